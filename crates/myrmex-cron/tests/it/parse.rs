//! Table tests for the parser: every construct, by the set of values it yields.

use myrmex_cron::Cron;

/// Parses `expr` or panics with the error message.
pub(crate) fn cron(expr: &str) -> Cron {
    match Cron::parse(expr) {
        Ok(c) => c,
        Err(e) => panic!("{expr:?} should parse: {e}"),
    }
}

/// Two expressions that must denote the same schedule.
fn same(a: &str, b: &str) {
    assert_eq!(
        cron(a),
        cron(b),
        "{a:?} and {b:?} should be the same schedule"
    );
}

#[test]
fn equivalent_spellings() {
    let table = [
        ("0 0 * * *", "@daily"),
        ("0 0 * * *", "@MIDNIGHT"),
        ("0 0 1 1 *", "@yearly"),
        ("0 0 1 1 *", "@Annually"),
        ("0 0 1 * *", "@monthly"),
        ("0 0 * * 0", "@weekly"),
        ("0 * * * *", "@hourly"),
        ("  0 0\t* *   *  ", "0 0 * * *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * sun", "0 0 * * 0"),
        ("0 0 * jan-mar *", "0 0 * 1,2,3 *"),
        ("0 0 * NOV-FEB *", "0 0 * 11,12,1,2 *"),
        ("0 22-2 * * *", "0 22,23,0,1,2 * * *"),
        ("0 22-2/2 * * *", "0 22,0,2 * * *"),
        ("0 0 * * FRI-MON", "0 0 * * 5,6,0,1"),
        ("0 0 * * 6-7", "0 0 * * 6,0"),
        ("0 0 * * 5-1/2", "0 0 * * 5,0"),
        ("0 0 * * */2", "0 0 * * */2"),
        ("0-59/15 * * * *", "0,15,30,45 * * * *"),
        ("5/20 * * * *", "5,25,45 * * * *"),
        ("0 0 0 * * * */1", "0 0 0 * * * 1970-2199"),
        ("0 0 * * 1/2", "0 0 * * 1,3,5"),
        ("0 0 * * 7/3", "0 0 * * 0,3,6"),
        ("0 0 * * 0-7", "0 0 * * 0-6"),
        ("0 0 ? * MON", "0 0 * * 1"),
        ("0 0 1 * ?", "0 0 1 * *"),
        ("0 0 * * 5L", "0 0 * * friL"),
        ("0 0 * * 5#3", "0 0 * * FRI#3"),
        ("0 0 * * 7#1", "0 0 * * SUN#1"),
        ("0 0 L-0 * *", "0 0 L * *"),
        ("0 0 lw * *", "0 0 LW * *"),
        ("0 0 15w * *", "0 0 15W * *"),
        ("0 0 */1 * *", "0 0 * * *"),
        ("00 05 * * *", "0 5 * * *"),
    ];
    for (a, b) in table {
        same(a, b);
    }
}

#[test]
fn distinct_schedules() {
    let table = [
        ("0 0 1 * */2", "0 0 1 * 0,2,4,6"),
        ("0 0 * * 0", "0 0 * * *"),
        ("0 0 0 * * * 2030", "0 0 0 * * *"),
        ("@hourly", "@daily"),
    ];
    for (a, b) in table {
        assert_ne!(cron(a), cron(b), "{a:?} vs {b:?}");
    }
}

#[test]
fn accepted_expressions() {
    let table = [
        "* * * * *",
        "* * * * * *",
        "* * * * * * *",
        "59 23 31 12 6",
        "0-59 0-23 1-31 1-12 0-7",
        "0 0 L * *",
        "0 0 L-3 * *",
        "0 0 L-30 * *",
        "0 0 LW * *",
        "0 0 1W,15W,L * *",
        "0 0 * * MON#1,FRI#5",
        "0 0 * * 1L,5L",
        "0 0 0 29 2 * 2028",
        "0 0 0 * * * 1970-2199",
        "0 0 0 * * * 2190-1975/5",
        "0 0 0 * * * */10",
        "0 0 * * TUE-thu",
        "0 0 1-7 * */2",
        "0 0 30 2 MON",
        "0 0 31 * *",
        "0 0 29 2 *",
    ];
    for expr in table {
        cron(expr);
    }
}
