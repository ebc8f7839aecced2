mod conformance {
    use std::path::PathBuf;

    use myrmex_store::JsonFileStore;
    use myrmex_store::conformance::Backend;

    struct JsonBackend {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl JsonBackend {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            Self { _dir: dir, path }
        }
    }

    impl Backend for JsonBackend {
        type Store = JsonFileStore;
        fn open(&mut self) -> JsonFileStore {
            JsonFileStore::open(&self.path).unwrap()
        }
        fn reopen(&mut self, store: JsonFileStore) -> Option<JsonFileStore> {
            use myrmex_store::Store;
            store.close().unwrap();
            Some(self.open())
        }
    }

    myrmex_store::conformance_tests!(JsonBackend::new());
}

mod format {
    use std::fs;
    use std::path::{Path, PathBuf};

    use jiff::Timestamp;
    use myrmex_store::{
        Attempt, AttemptOutcome, DependencyRule, JobDefinition, JobId, JobRecord, JobStatus,
        JsonFileStore, OccurrenceKey, RunFilter, RunState, Store, StoreError, TriggerSpec,
    };

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.json");

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn copy_fixture(dir: &Path) -> PathBuf {
        let path = dir.join("state.json");
        fs::copy(FIXTURE, &path).unwrap();
        path
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn loads_the_v1_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let s = JsonFileStore::open(copy_fixture(dir.path())).unwrap();
        let jobs = s.list_jobs().unwrap();
        let names: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(names, ["backup", "cleanup", "report"]);
        let backup = &jobs[0];
        assert_eq!(backup.definition.handler, "backup");
        assert_eq!(
            backup.definition.trigger,
            TriggerSpec::Cron {
                expr: "0 3 * * *".into(),
                zone: "Europe/Berlin".into(),
                dst: Some("skip".into()),
            }
        );
        assert_eq!(backup.definition.policies.retry.max_attempts, 3);
        assert_eq!(
            backup.definition.policies.retry.jitter,
            jiff::SignedDuration::from_secs(2)
        );
        assert!(backup.definition.policies.keep_finished);
        let TriggerSpec::Union { triggers } = &jobs[2].definition.trigger else {
            panic!("report has a union trigger")
        };
        assert_eq!(triggers.len(), 4);
        assert!(matches!(
            &triggers[3],
            TriggerSpec::OnceLocal { datetime, zone, dst: Some(dst) }
                if datetime == "2026-03-29T02:30:00" && zone == "Europe/Paris" && dst == "later"
        ));
        assert_eq!(backup.state.watermark, Some(ts("2026-01-01T00:03:00Z")));
        assert_eq!(backup.state.run_count, 1);
        assert!(jobs[1].state.paused);
        assert_eq!(jobs[1].state.status, JobStatus::Paused);
        assert_eq!(
            jobs[2].definition.depends_on[0].rule,
            DependencyRule::AllDone
        );

        let runs = s.list_runs(&RunFilter::all()).unwrap();
        let states: Vec<(&str, RunState, Attempt)> = runs
            .iter()
            .map(|r| (r.key.job.as_str(), r.state, r.attempt))
            .collect();
        assert_eq!(
            states,
            [
                ("backup", RunState::Succeeded, Attempt(2)),
                ("report", RunState::Blocked, Attempt(0)),
                ("backup", RunState::Running, Attempt(1)),
                ("backup", RunState::Skipped, Attempt(0)),
            ]
        );
        let outcomes: Vec<_> = s
            .attempts(runs[0].id)
            .unwrap()
            .into_iter()
            .map(|a| (a.outcome, a.error))
            .collect();
        assert_eq!(
            outcomes,
            [
                (Some(AttemptOutcome::Failed), Some("disk full".to_owned())),
                (Some(AttemptOutcome::Succeeded), None)
            ]
        );
        assert_eq!(s.upstream_deps(runs[1].id).unwrap()[0].upstream, runs[2].id);
        let key = OccurrenceKey::new("backup", ts("2026-01-01T00:01:00Z"));
        assert_eq!(s.find_run(&key).unwrap().unwrap().id, runs[2].id);
        // After a restart the running one is marked interrupted.
        let rec = s.recover_interrupted(ts("2026-01-01T01:00:00Z")).unwrap();
        assert_eq!(rec.len(), 1);
        assert_eq!(rec[0].state, RunState::Interrupted);
    }

    /// Writing back the fixture's content gives the fixture, byte for byte: the v1 format is
    /// stable.
    #[test]
    fn rewriting_the_fixture_reproduces_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = copy_fixture(dir.path());
        let s = JsonFileStore::open(&path).unwrap();
        let t = ts("2026-01-01T00:00:00Z");
        let def = JobDefinition {
            trigger: TriggerSpec::Manual,
            handler: "x".into(),
            args: serde_json::Value::Null,
            policies: Default::default(),
            depends_on: vec![],
        };
        s.upsert_job(JobRecord::new("zz-temp", def, None, t))
            .unwrap();
        assert_ne!(fs::read(&path).unwrap(), fs::read(FIXTURE).unwrap());
        assert!(s.delete_job(&JobId::from("zz-temp"), t).unwrap());
        assert_eq!(
            String::from_utf8(fs::read(&path).unwrap()).unwrap(),
            fs::read_to_string(FIXTURE).unwrap()
        );
        assert_eq!(listing(dir.path()), ["state.json"], "no temp file left");
    }

    enum Expect {
        Corrupt { line: usize },
        Newer(u64),
    }

    /// Bad files are refused with a clear error, and neither they nor their directory are
    /// touched.
    #[test]
    fn bad_files_are_refused_and_left_alone() {
        let fixture = fs::read_to_string(FIXTURE).unwrap();
        let truncated = &fixture[..fixture.len() / 2];
        let truncated_line = truncated.lines().count();
        let newer = fixture.replace("\"format_version\": 1", "\"format_version\": 2");
        let wrong_type = fixture.replace("\"run_count\": 1,", "\"run_count\": \"one\",");
        let wrong_type_line = fixture
            .lines()
            .position(|l| l.contains("\"run_count\": 1,"))
            .unwrap()
            + 1;
        let cases: Vec<(&str, String, Expect, &str)> = vec![
            (
                "truncated",
                truncated.to_owned(),
                Expect::Corrupt {
                    line: truncated_line,
                },
                "EOF while parsing",
            ),
            ("empty", String::new(), Expect::Corrupt { line: 1 }, "EOF"),
            (
                "not json",
                "hello\n".into(),
                Expect::Corrupt { line: 1 },
                "expected value",
            ),
            (
                "not a store",
                "{\"jobs\": []}".into(),
                Expect::Corrupt { line: 0 },
                "not a myrmex store",
            ),
            (
                "no version",
                "{\"format\": \"myrmex-store\"}".into(),
                Expect::Corrupt { line: 0 },
                "format_version",
            ),
            (
                "wrong type",
                wrong_type,
                Expect::Corrupt {
                    line: wrong_type_line,
                },
                "invalid type",
            ),
            ("newer version", newer, Expect::Newer(2), "newer than 1"),
        ];
        for (name, content, expect, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.json");
            fs::write(&path, &content).unwrap();
            let err = JsonFileStore::open(&path).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
            assert!(msg.contains(needle), "{name}: {msg}");
            match (expect, &err) {
                (Expect::Corrupt { line }, StoreError::CorruptFile { line: got, .. }) => {
                    assert_eq!(*got, line, "{name}: {msg}")
                }
                (Expect::Newer(v), StoreError::UnsupportedVersion { found, .. }) => {
                    assert_eq!(*found, v, "{name}")
                }
                (_, other) => panic!("{name}: unexpected {other:?}"),
            }
            assert_eq!(
                fs::read_to_string(&path).unwrap(),
                content,
                "{name}: file untouched"
            );
            assert_eq!(
                listing(dir.path()),
                ["state.json"],
                "{name}: nothing created"
            );
        }
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = JsonFileStore::open(dir.path().join("nope/state.json")).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    }

    #[test]
    fn commits_are_readable_json_with_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let s = JsonFileStore::open(&path).unwrap();
        assert!(!path.exists(), "created by the first commit only");
        let t = ts("2026-01-01T00:00:00Z");
        let def = JobDefinition {
            trigger: TriggerSpec::Once { at: t },
            handler: "h".into(),
            args: serde_json::json!({"k": "v"}),
            policies: Default::default(),
            depends_on: vec![],
        };
        s.upsert_job(JobRecord::new("j", def, Some(t), t)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["format"], "myrmex-store");
        assert_eq!(v["format_version"], 1);
        assert_eq!(v["jobs"][0]["definition"]["args"]["k"], "v");
        assert_eq!(listing(dir.path()), ["s.json"]);
    }
}
