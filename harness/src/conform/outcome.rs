//! What the suite printed (run one case at a time, verbose), as cases: `🔷 Running test:
//! RFC 9113 :: 6. frame definitions :: sends ping frame with ack`, then `✅ Test passed:
//! ...`, or `❌ Test failed: ...` followed by the error's first line (`   0: Expected
//! GOAWAY with one of ... but got ProtocolError`), or a panic of the suite itself (`The
//! application panicked`, `Message: ...`) before the next case; and the closing `Passed
//! N/M tests` line. Pure: text in, cases out.

use serde::Serialize;

/// One test case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// The suite's full name, e.g. `RFC 9113 :: 6. frame definitions :: sends ping frame
    /// with invalid length`.
    pub id: String,
    /// The document, e.g. `RFC 9113`.
    pub rfc: String,
    /// The chapter as the suite names it, e.g. `6. frame definitions`.
    pub chapter: String,
    /// The case's own name.
    pub name: String,
    /// Passed.
    pub passed: bool,
    /// Why it failed, as the suite says.
    pub message: Option<String>,
    /// The suite itself panicked in this case (it reports neither pass nor fail).
    pub crashed: bool,
}

/// Every case of a run, and what the closing line says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    /// In the order the suite printed them.
    pub cases: Vec<Case>,
    /// `Passed N/M`: (N, M), when printed.
    pub summary: Option<(usize, usize)>,
}

/// Removes ANSI colour sequences.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn case(id: &str, passed: bool) -> Case {
    let parts: Vec<&str> = id.split(" :: ").collect();
    let (rfc, chapter, name) = match parts.as_slice() {
        [rfc, chapter, rest @ ..] if !rest.is_empty() => {
            (rfc.to_string(), chapter.to_string(), rest.join(" :: "))
        }
        _ => (String::new(), String::new(), id.to_string()),
    };
    Case {
        id: id.to_string(),
        rfc,
        chapter,
        name,
        passed,
        message: None,
        crashed: false,
    }
}

/// Reads the suite's output (colours or not).
pub fn parse(output: &str) -> Parsed {
    let text = strip_ansi(output);
    let mut parsed = Parsed::default();
    // The case that is running, and whether its failure message is still to come.
    let mut current: Option<usize> = None;
    let mut awaiting_message = false;
    let mut panicked = false;
    let find = |cases: &[Case], id: &str| cases.iter().rposition(|c| c.id == id);
    for line in text.lines() {
        let after = |marker: &str| line.split_once(marker).map(|x| x.1.trim());
        if let Some(id) = after("Running test: ") {
            parsed.cases.push(case(id, false));
            parsed.cases.last_mut().expect("pushed").message = Some("no result".into());
            current = Some(parsed.cases.len() - 1);
            (awaiting_message, panicked) = (false, false);
        } else if let Some(id) = after("Test passed: ") {
            let i = find(&parsed.cases, id).unwrap_or_else(|| {
                parsed.cases.push(case(id, true));
                parsed.cases.len() - 1
            });
            parsed.cases[i].passed = true;
            parsed.cases[i].message = None;
            awaiting_message = false;
        } else if let Some(id) = after("Test failed: ") {
            let i = find(&parsed.cases, id).unwrap_or_else(|| {
                parsed.cases.push(case(id, false));
                parsed.cases.len() - 1
            });
            parsed.cases[i].message = None;
            current = Some(i);
            awaiting_message = true;
        } else if line.contains("The application panicked") {
            panicked = true;
        } else if let (true, Some(msg)) = (panicked, line.trim_start().strip_prefix("Message:")) {
            if let Some(c) = current.map(|i| &mut parsed.cases[i]) {
                if !c.passed {
                    c.crashed = true;
                    c.message = Some(format!("the suite panicked: {}", msg.trim()));
                }
            }
            panicked = false;
        } else if let (true, Some(msg)) = (awaiting_message, line.trim_start().strip_prefix("0: "))
        {
            if let Some(i) = current {
                parsed.cases[i].message = Some(msg.trim().to_string());
            }
            awaiting_message = false;
        } else if let Some(rest) = after("Passed ") {
            let counts = rest.split_whitespace().next().unwrap_or("");
            if let Some((n, m)) = counts.split_once('/') {
                if let (Ok(n), Ok(m)) = (n.parse(), m.parse()) {
                    parsed.summary = Some((n, m));
                }
            }
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &str = "Will run tests against 127.0.0.1:8080\n\
        \u{1b}[1;32m✅ Test passed: RFC 9113 :: 6. frame definitions :: sends ping frame with ack\u{1b}[0m\n\
        ❌ Test failed: RFC 9113 :: 6. frame definitions :: sends ping frame with invalid length\n\
        \n\
        \u{1b}[91m   0: \u{1b}[0mExpected GOAWAY with one of BitFlags<ErrorC>(0b1000000, FrameSizeError), but got ProtocolError\n\
        \n\
        Location:\n\
        \x20  /root/src/lib.rs:585\n\
        🔷 Running test: RFC 9113 :: 7. error codes :: sends goaway frame with unknown error code\n\
        The application panicked (crashed).\n\
        Message:  Wanted Ping, peer hung up.\n\
        🚄 Passed \u{1b}[1;32m1/3\u{1b}[0m tests in 0.27 seconds\n";

    #[test]
    fn cases_their_chapters_messages_and_the_closing_count_are_read() {
        let p = parse(OUTPUT);
        assert_eq!(p.cases.len(), 3);
        assert!(p.cases[0].passed);
        assert_eq!(p.cases[0].chapter, "6. frame definitions");
        assert_eq!(p.cases[0].name, "sends ping frame with ack");
        let failed = &p.cases[1];
        assert!(!failed.passed);
        assert_eq!(failed.rfc, "RFC 9113");
        assert!(failed
            .message
            .as_deref()
            .unwrap()
            .ends_with("but got ProtocolError"));
        let crashed = &p.cases[2];
        assert!(crashed.crashed && !crashed.passed);
        assert_eq!(
            crashed.message.as_deref(),
            Some("the suite panicked: Wanted Ping, peer hung up.")
        );
        assert_eq!(p.summary, Some((1, 3)));
        assert_eq!(parse("nothing here").cases, vec![]);
    }
}
