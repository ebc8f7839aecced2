//! `Display for Cron`: the canonical form, and the round trip
//! parse → display → parse giving the same schedule.

use myrmex_cron::Cron;
use proptest::prelude::*;

#[track_caller]
fn check(table: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for &(expr, want) in table {
        let cron = Cron::parse(expr).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"));
        let got = cron.to_string();
        if got != want {
            failures.push(format!("{expr:?}\n   got: {got:?}\n  want: {want:?}"));
        }
        match Cron::parse(&got) {
            Ok(again) if again == cron => {}
            Ok(again) => failures.push(format!(
                "{expr:?} -> {got:?} parses to {again:?}, not {cron:?}"
            )),
            Err(e) => failures.push(format!("{expr:?} -> {got:?} does not parse: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn canonical_forms() {
    check(&[
        ("* * * * *", "* * * * *"),
        ("30 2 * * *", "30 2 * * *"),
        ("@daily", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * 1-5"),
        ("0,15,30,45 * * * *", "0/15 * * * *"),
        ("0-59 0-23 * * *", "0-59 0-23 * * *"),
        ("0-59/15 * * * *", "0/15 * * * *"),
        ("5/15 * * * *", "5/15 * * * *"),
        ("10-40/10 * * * *", "10-40/10 * * * *"),
        ("*/7 * * * *", "*/7 * * * *"),
        ("*/15,7 * * * *", "*/15,7 * * * *"),
        ("*/60 * * * *", "*/60 * * * *"),
        ("0 22-2 * * *", "0 22-2 * * *"),
        ("0 22-2/2 * * *", "0 0,2,22 * * *"),
        ("0 0,1,2,3,10,11 * * *", "0 0-3,10,11 * * *"),
        ("0 23,0 * * *", "0 0,23 * * *"),
        ("0 0 ? * *", "0 0 * * *"),
        ("0 0 1-31 * *", "0 0 1-31 * *"),
        ("0 0 */2 * *", "0 0 */2 * *"),
        ("0 0 L * *", "0 0 L * *"),
        ("0 0 L-3,LW,15W * *", "0 0 L-3,LW,15W * *"),
        ("0 0 1,L,L-1 * *", "0 0 1,L,L-1 * *"),
        ("0 0 * JAN-MAR *", "0 0 * 1-3 *"),
        ("0 0 * NOV-FEB *", "0 0 * 11-2 *"),
        ("0 0 1 */3 *", "0 0 1 */3 *"),
        ("0 0 1 1,7 *", "0 0 1 */6 *"),
        ("0,30 * * * * *", "*/30 * * * * *"),
        ("0,29 * * * * *", "0,29 * * * * *"),
        ("0 0 * * 7", "0 0 * * 0"),
        ("0 0 * * 0-7", "0 0 * * 0-6"),
        ("0 0 * * */2", "0 0 * * */2"),
        ("0 0 * * 1/2", "0 0 * * 1/2"),
        ("0 0 * * 6-7", "0 0 * * 0,6"),
        ("0 0 * * FRI-MON", "0 0 * * 5-1"),
        ("0 0 * * FRIL,MON#2", "0 0 * * 5L,1#2"),
        ("0 0 1,15 * MON", "0 0 1,15 * 1"),
        ("0 0 ? * MON", "0 0 * * 1"),
        ("0 0 1 * ?", "0 0 1 * *"),
        ("0 0 1 * 0-6", "0 0 1 * 0-6"),
        ("*/10 * * * * *", "*/10 * * * * *"),
        ("0 0 0 * * *", "0 0 0 * * *"),
        ("0 0 0 1 1 * 2030", "0 0 0 1 1 * 2030"),
        ("0 0 0 1 1 * *", "0 0 0 1 1 * *"),
        ("0 0 0 * * * 2026/2", "0 0 0 * * * 2026/2"),
        ("0 0 0 * * * 2026-2030,2040", "0 0 0 * * * 2026-2030,2040"),
    ]);
}

/// One item of a field: a value, a range (possibly wrapped), a step form or `*`.
fn item(min: u32, max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        (min..=max).prop_map(|v| v.to_string()),
        (min..=max, min..=max).prop_map(|(a, b)| format!("{a}-{b}")),
        (min..=max, min..=max, 1..=(max - min + 2)).prop_map(|(a, b, s)| format!("{a}-{b}/{s}")),
        (min..=max, 1..=(max - min + 2)).prop_map(|(a, s)| format!("{a}/{s}")),
        (1..=(max - min + 2)).prop_map(|s| format!("*/{s}")),
        Just("*".to_owned()),
    ]
}

fn field(min: u32, max: u32, extra: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let one = prop_oneof![4 => item(min, max).boxed(), 1 => extra];
    prop::collection::vec(one, 1..4).prop_map(|items| items.join(","))
}

fn none() -> BoxedStrategy<String> {
    Just("*".to_owned()).boxed()
}

fn dom_extra() -> BoxedStrategy<String> {
    prop_oneof![
        Just("L".to_owned()),
        Just("LW".to_owned()),
        Just("?".to_owned()),
        (1..=30u32).prop_map(|n| format!("L-{n}")),
        (1..=31u32).prop_map(|n| format!("{n}W")),
    ]
    .boxed()
}

fn dow_extra() -> BoxedStrategy<String> {
    prop_oneof![
        Just("?".to_owned()),
        Just("7".to_owned()),
        (0..=7u32).prop_map(|d| format!("{d}L")),
        (0..=7u32, 1..=5u32).prop_map(|(d, k)| format!("{d}#{k}")),
    ]
    .boxed()
}

fn expression() -> impl Strategy<Value = String> {
    (
        field(0, 59, none()),
        field(0, 59, none()),
        field(0, 23, none()),
        field(1, 31, dom_extra()),
        field(1, 12, none()),
        field(0, 6, dow_extra()),
        field(2020, 2040, none()),
        5..=7usize,
    )
        .prop_map(|(sec, min, hour, dom, mon, dow, year, n)| match n {
            5 => format!("{min} {hour} {dom} {mon} {dow}"),
            6 => format!("{sec} {min} {hour} {dom} {mon} {dow}"),
            _ => format!("{sec} {min} {hour} {dom} {mon} {dow} {year}"),
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn display_round_trips(expr in expression()) {
        // Some random expressions never fire and are rejected; the rest must survive.
        if let Ok(cron) = Cron::parse(&expr) {
            let text = cron.to_string();
            let again = Cron::parse(&text);
            prop_assert_eq!(again.as_ref().ok(), Some(&cron), "{:?} -> {:?} -> {:?}", expr, text, again);
            // The canonical form is a fixed point.
            prop_assert_eq!(again.map(|c| c.to_string()).ok(), Some(text));
        }
    }

    #[test]
    fn describe_never_panics_and_is_a_sentence(expr in expression()) {
        if let Ok(cron) = Cron::parse(&expr) {
            let d = cron.describe();
            prop_assert!(d.starts_with(|c: char| c.is_ascii_uppercase()), "{:?}: {:?}", expr, d);
            prop_assert!(!d.contains("  ") && !d.ends_with(' ') && !d.contains(", ,"), "{:?}: {:?}", expr, d);
        }
    }
}
