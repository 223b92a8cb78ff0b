//! Email on the wire: one RFC 5322 message, `multipart/alternative` with the plain text
//! first and the HTML second, both UTF-8 in quoted-printable, non-ASCII subjects and names
//! as RFC 2047 encoded words, and the RFC 8058 one-click unsubscribe headers.
//!
//! Header values come from profiles and templates: any control character in one (a CR or LF
//! above all, which would start a new header) is refused, never cleaned, so no name, address
//! or subject can add a header. `Date` and `Message-ID` are left to SES, which sets both.

use sha2::{Digest, Sha256};

/// A display name and an address: `ACME Channel Stars <rewards@acme.example>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("the {0} contains a line break or another control character")]
    ControlCharacter(&'static str),
    #[error("the {0} is not an address mail can be sent to")]
    Address(&'static str),
    #[error("the List-Unsubscribe URL must be an https URL of at most 900 characters")]
    UnsubscribeUrl,
}

/// Longest line of a quoted-printable body, soft break included (RFC 2045).
const QP_LINE: usize = 76;
/// Header lines are folded to this length where they can be (RFC 5322 §2.1.1).
const HEADER_LINE: usize = 78;
/// An encoded word's line, word and leading space or header name included (RFC 2047 §2).
const WORD_LINE: usize = 76;

/// Plain HTTP on this machine: the local stack serves the API on loopback without TLS (a
/// deployed API Gateway is always https).
fn is_loopback_http(url: &str) -> bool {
    ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
        .iter()
        .any(|prefix| url.starts_with(prefix))
        && super::message::is_https_url(&url.replacen("http://", "https://", 1))
}

/// An address mail goes to or comes from: ASCII, one `@`, a dotted domain, nothing that
/// could end the address or start another (spaces, `<>`, `,`, `;`, quotes, controls).
pub fn is_sendable_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    address.len() <= 254
        && (1..=64).contains(&local.len())
        && address.chars().all(|c| {
            c.is_ascii_graphic()
                && !matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | '\\' | ',' | ';' | ':' | '"'
                )
        })
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
        && !domain.contains("..")
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
}

fn check_header(field: &'static str, value: &str) -> Result<(), MimeError> {
    if value.chars().any(char::is_control) {
        return Err(MimeError::ControlCharacter(field));
    }
    Ok(())
}

/// The whole message: headers, then the two alternatives. `list_unsubscribe` (an https
/// URL) adds `List-Unsubscribe` and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`.
pub fn build_email(
    from: &Mailbox,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    list_unsubscribe: Option<&str>,
) -> Result<Vec<u8>, MimeError> {
    check_header("sender name", &from.name)?;
    check_header("sender address", &from.address)?;
    check_header("recipient address", to)?;
    check_header("subject", subject)?;
    if !is_sendable_address(&from.address) {
        return Err(MimeError::Address("sender address"));
    }
    if !is_sendable_address(to) {
        return Err(MimeError::Address("recipient address"));
    }
    if let Some(url) = list_unsubscribe {
        check_header("List-Unsubscribe URL", url)?;
        if url.len() > 900 || !(super::message::is_https_url(url) || is_loopback_http(url)) {
            return Err(MimeError::UnsubscribeUrl);
        }
    }
    // "=_" never occurs in quoted-printable output, so the boundary cannot occur in a body.
    let digest = Sha256::new()
        .chain_update(subject)
        .chain_update([0])
        .chain_update(text)
        .chain_update([0])
        .chain_update(html)
        .finalize();
    let boundary = format!("=_carrot_{}", hex::encode(&digest[..12]));

    let mut out = String::new();
    let mailbox = format!("<{}>", from.address);
    let from_value = if from.name.trim().is_empty() {
        mailbox
    } else {
        let name = display_name(&from.name, "From: ".len());
        let last_line = match name.rsplit_once("\r\n") {
            Some((_, last)) => last.len(),
            None => "From: ".len() + name.len(),
        };
        // The address goes on a line of its own rather than past 78 characters.
        let gap = if last_line + 1 + mailbox.len() > HEADER_LINE {
            "\r\n "
        } else {
            " "
        };
        format!("{name}{gap}{mailbox}")
    };
    header(&mut out, "From", &from_value);
    header(&mut out, "To", &format!("<{to}>"));
    header(
        &mut out,
        "Subject",
        &unstructured(subject, "Subject: ".len()),
    );
    header(&mut out, "MIME-Version", "1.0");
    if let Some(url) = list_unsubscribe {
        header(&mut out, "List-Unsubscribe", &format!("<{url}>"));
        header(
            &mut out,
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click",
        );
    }
    header(
        &mut out,
        "Content-Type",
        &format!("multipart/alternative;\r\n boundary=\"{boundary}\""),
    );
    out.push_str("\r\n");
    for (subtype, body) in [("plain", text), ("html", html)] {
        out.push_str(&format!("--{boundary}\r\n"));
        header(
            &mut out,
            "Content-Type",
            &format!("text/{subtype}; charset=UTF-8"),
        );
        header(&mut out, "Content-Transfer-Encoding", "quoted-printable");
        out.push_str("\r\n");
        out.push_str(&quoted_printable(body));
        out.push_str("\r\n");
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    Ok(out.into_bytes())
}

fn header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// A display name: a quoted string when it is printable ASCII, else encoded words.
fn display_name(name: &str, taken: usize) -> String {
    if name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) && !name.contains("=?") {
        let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        encoded_words(name, taken)
    }
}

/// An unstructured header value (the subject), folded at spaces when it is printable
/// ASCII, else as encoded words. `taken` is how much of the first line the name uses.
fn unstructured(value: &str, taken: usize) -> String {
    let ascii = value.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
    // A word too long to fold around is encoded too, so no line passes 78 characters.
    let long_word = value.split(' ').any(|w| taken + w.len() > HEADER_LINE);
    if !ascii || value.contains("=?") || long_word {
        return encoded_words(value, taken);
    }
    let mut out = String::new();
    let mut line = taken;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > HEADER_LINE && line > 1 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

/// `=?UTF-8?B?…?=` words of whole characters, one per folded line of at most 76
/// characters; `taken` is how much of the first line the header's name uses.
fn encoded_words(value: &str, taken: usize) -> String {
    use base64::Engine;
    // Base64 of n bytes takes 4 * ceil(n / 3) characters; the word adds 12.
    let bytes_within = |width: usize| (WORD_LINE - width - 12) / 4 * 3;
    let mut words = Vec::new();
    let mut chunk = String::new();
    let mut room = bytes_within(taken);
    for c in value.chars() {
        if chunk.len() + c.len_utf8() > room {
            words.push(std::mem::take(&mut chunk));
            room = bytes_within(1);
        }
        chunk.push(c);
    }
    if !chunk.is_empty() || words.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?UTF-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// Quoted-printable (RFC 2045 §6.7) with CRLF line ends: lines of at most 76 characters,
/// `=` and every byte outside printable ASCII encoded, and a space or tab at a line's end.
fn quoted_printable(body: &str) -> String {
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::new();
    for (i, line) in normalized.split('\n').enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let token = if literal {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            // Room for the token, and for a soft break after it unless the line ends here.
            let room = if last { QP_LINE } else { QP_LINE - 1 };
            if width + token.len() > room {
                out.push_str("=\r\n");
                width = 0;
            }
            out.push_str(&token);
            width += token.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    /// A message read back the way a mail client reads it.
    struct Parsed {
        /// Unfolded, with encoded words decoded.
        headers: Vec<(String, String)>,
        parts: Vec<(Vec<(String, String)>, String)>,
    }

    impl Parsed {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
        let (head, body) = text
            .split_once("\r\n\r\n")
            .expect("a blank line ends the headers");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            assert!(line.len() <= 998, "header line too long: {line}");
            assert!(!line.contains('\r') && !line.contains('\n'));
            if line.starts_with([' ', '\t']) {
                headers
                    .last_mut()
                    .expect("a continuation follows a header")
                    .1 += line;
            } else {
                let (name, value) = line.split_once(": ").expect("name: value");
                assert!(name.bytes().all(|b| b.is_ascii_graphic() && b != b':'));
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        let headers = headers
            .into_iter()
            .map(|(n, v)| (n, decode_words(&v)))
            .collect();
        (headers, body)
    }

    /// Decodes `=?UTF-8?B?…?=` words; whitespace between two words is dropped (RFC 2047 §6.2).
    fn decode_words(value: &str) -> String {
        let mut out = String::new();
        let mut rest = value;
        let mut after_word = false;
        while let Some(start) = rest.find("=?UTF-8?B?") {
            let between = &rest[..start];
            if !(after_word && between.trim().is_empty()) {
                out.push_str(between);
            }
            let word = &rest[start + 10..];
            let end = word.find("?=").expect("a word ends");
            assert!(end + 12 <= 75, "an encoded word longer than 75 characters");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&word[..end])
                .unwrap();
            out.push_str(&String::from_utf8(bytes).expect("whole characters per word"));
            rest = &word[end + 2..];
            after_word = true;
        }
        out.push_str(rest);
        out
    }

    fn decode_qp(body: &str) -> String {
        let mut bytes = Vec::new();
        for line in body.split("\r\n") {
            assert!(line.len() <= QP_LINE, "line of {}: {line:?}", line.len());
            assert!(
                !line.ends_with(' ') && !line.ends_with('\t'),
                "trailing space"
            );
            let (line, soft) = match line.strip_suffix('=') {
                Some(l) => (l, true),
                None => (line, false),
            };
            let mut it = line.bytes();
            while let Some(b) = it.next() {
                if b == b'=' {
                    let hex = [it.next().unwrap(), it.next().unwrap()];
                    bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                } else {
                    assert!(b == b' ' || b == b'\t' || (33..=126).contains(&b));
                    bytes.push(b);
                }
            }
            if !soft {
                bytes.extend_from_slice(b"\n");
            }
        }
        bytes.pop();
        String::from_utf8(bytes).unwrap()
    }

    fn parse(raw: &[u8]) -> Parsed {
        let text = std::str::from_utf8(raw).expect("7-bit");
        assert!(text.is_ascii(), "the message is 7-bit ASCII");
        assert!(
            !text.replace("\r\n", "").contains(['\r', '\n']),
            "bare CR or LF"
        );
        let (headers, body) = split_headers(text);
        let content_type = headers
            .iter()
            .find(|(n, _)| n == "Content-Type")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(content_type.starts_with("multipart/alternative;"));
        let boundary = content_type
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        let mut sections: Vec<&str> = body.split(&format!("--{boundary}")).collect();
        assert_eq!(sections.remove(0), "", "nothing before the first part");
        assert_eq!(
            sections.pop(),
            Some("--\r\n"),
            "the closing delimiter ends it"
        );
        let parts = sections
            .into_iter()
            .map(|section| {
                let section = section.strip_prefix("\r\n").unwrap();
                let section = section.strip_suffix("\r\n").unwrap();
                let (headers, body) = split_headers(section);
                (headers, decode_qp(body))
            })
            .collect();
        Parsed { headers, parts }
    }

    fn acme() -> Mailbox {
        Mailbox {
            name: "ACME Channel Stars".into(),
            address: "rewards@acme.example".into(),
        }
    }

    #[test]
    fn a_swedish_message_reads_back_whole() {
        let subject = "Anna, två inloggningsdagar till – då är du med i dragningen för Årets resa";
        let text = "Hej Anna!\n\nDu har 1\u{a0}234 poäng. Lång rad: ".to_owned()
            + &"åäö ".repeat(40)
            + "\n= slut =";
        let html = "<p lang=\"sv\">Hej Anna! Du har <strong>1&nbsp;234</strong> poäng.</p>";
        let raw = build_email(
            &Mailbox {
                name: "Åsa på ACME".into(),
                address: "rewards@acme.example".into(),
            },
            "anna@nordic-dealer.example",
            subject,
            &text,
            html,
            Some("https://api.acme.example/v1/unsubscribe?token=abc.def"),
        )
        .unwrap();
        let parsed = parse(&raw);
        assert_eq!(
            parsed.header("From"),
            Some("Åsa på ACME <rewards@acme.example>")
        );
        assert_eq!(parsed.header("To"), Some("<anna@nordic-dealer.example>"));
        assert_eq!(parsed.header("Subject"), Some(subject));
        assert_eq!(parsed.header("MIME-Version"), Some("1.0"));
        assert_eq!(
            parsed.header("List-Unsubscribe"),
            Some("<https://api.acme.example/v1/unsubscribe?token=abc.def>")
        );
        assert_eq!(
            parsed.header("List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
        let types: Vec<&str> = parsed
            .parts
            .iter()
            .map(|(h, _)| {
                h.iter()
                    .find(|(n, _)| n == "Content-Type")
                    .unwrap()
                    .1
                    .as_str()
            })
            .collect();
        assert_eq!(
            types,
            ["text/plain; charset=UTF-8", "text/html; charset=UTF-8"]
        );
        assert_eq!(parsed.parts[0].1, text);
        assert_eq!(parsed.parts[1].1, html);
        let raw = String::from_utf8(raw).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            assert!(line.len() <= HEADER_LINE, "{line}");
        }
    }

    #[test]
    fn an_ascii_subject_and_name_stay_readable_and_essential_mail_has_no_unsubscribe() {
        let raw = build_email(
            &acme(),
            "rep@dealer.example",
            "Your week in ACME Channel Stars: 120 points",
            "Hi",
            "<p>Hi</p>",
            None,
        )
        .unwrap();
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.starts_with("From: \"ACME Channel Stars\" <rewards@acme.example>\r\n"));
        assert!(text.contains("\r\nSubject: Your week in ACME Channel Stars: 120 points\r\n"));
        let parsed = parse(&raw);
        assert_eq!(parsed.header("List-Unsubscribe"), None);
        assert_eq!(parsed.header("List-Unsubscribe-Post"), None);
    }

    #[test]
    fn a_quote_in_an_ascii_name_is_escaped() {
        let raw = build_email(
            &Mailbox {
                name: "ACME \"Stars\" \\ Co".into(),
                address: "rewards@acme.example".into(),
            },
            "rep@dealer.example",
            "Hi",
            "Hi",
            "<p>Hi</p>",
            None,
        )
        .unwrap();
        assert!(
            String::from_utf8(raw)
                .unwrap()
                .starts_with("From: \"ACME \\\"Stars\\\" \\\\ Co\" <rewards@acme.example>\r\n")
        );
    }

    #[test]
    fn no_header_can_be_injected() {
        let with_name = |name: &str| Mailbox {
            name: name.into(),
            address: "rewards@acme.example".into(),
        };
        let send = |from: &Mailbox, to: &str, subject: &str, unsubscribe: Option<&str>| {
            build_email(from, to, subject, "t", "<p>h</p>", unsubscribe)
        };
        assert_eq!(
            send(
                &with_name("Eve\r\nBcc: victim@target.example"),
                "rep@dealer.example",
                "Hi",
                None
            ),
            Err(MimeError::ControlCharacter("sender name"))
        );
        assert_eq!(
            send(
                &with_name("Eve\nBcc: x@y.example"),
                "rep@dealer.example",
                "Hi",
                None
            ),
            Err(MimeError::ControlCharacter("sender name"))
        );
        assert_eq!(
            send(
                &acme(),
                "rep@dealer.example\r\nBcc: x@y.example",
                "Hi",
                None
            ),
            Err(MimeError::ControlCharacter("recipient address"))
        );
        assert_eq!(
            send(
                &acme(),
                "rep@dealer.example",
                "Hi\r\nBcc: x@y.example",
                None
            ),
            Err(MimeError::ControlCharacter("subject"))
        );
        assert_eq!(
            send(
                &acme(),
                "rep@dealer.example",
                "Hi",
                Some("https://a.example/u\r\nBcc: x")
            ),
            Err(MimeError::ControlCharacter("List-Unsubscribe URL"))
        );
        for to in [
            "rep@dealer.example, victim@target.example",
            "Rep <rep@dealer.example>",
            "rep@dealer",
            "rep@@dealer.example",
            "r p@dealer.example",
            "rep@dealer.example>",
        ] {
            assert_eq!(
                send(&acme(), to, "Hi", None),
                Err(MimeError::Address("recipient address")),
                "{to}"
            );
        }
        assert_eq!(
            send(
                &acme(),
                "rep@dealer.example",
                "Hi",
                Some("javascript:alert(1)")
            ),
            Err(MimeError::UnsubscribeUrl)
        );
        // Plain HTTP only to loopback (the local stack's API).
        for url in [
            "http://carrot.example/v1/unsubscribe",
            "http://127.0.0.1.evil.example/x",
        ] {
            assert_eq!(
                send(&acme(), "rep@dealer.example", "Hi", Some(url)),
                Err(MimeError::UnsubscribeUrl),
                "{url}"
            );
        }
        assert!(
            send(
                &acme(),
                "rep@dealer.example",
                "Hi",
                Some("http://127.0.0.1:8080/v1/unsubscribe?token=a.b")
            )
            .is_ok()
        );
        // A name with an encoded word's opening is encoded itself, so it cannot smuggle one.
        let raw = send(
            &with_name("=?UTF-8?B?QmNjOg==?="),
            "rep@dealer.example",
            "=?x?",
            None,
        )
        .unwrap();
        let parsed = parse(&raw);
        assert_eq!(
            parsed.header("From"),
            Some("=?UTF-8?B?QmNjOg==?= <rewards@acme.example>")
        );
        assert_eq!(parsed.header("Subject"), Some("=?x?"));
    }

    #[test]
    fn quoted_printable_keeps_lines_short_and_encodes_what_it_must() {
        let qp = quoted_printable("a = b \nend\t\n");
        assert_eq!(qp, "a =3D b=20\r\nend=09\r\n");
        let long = "x".repeat(200);
        let qp = quoted_printable(&long);
        assert!(qp.split("\r\n").all(|l| l.len() <= QP_LINE));
        assert_eq!(decode_qp(&qp), long);
    }

    proptest! {
        #[test]
        fn any_body_reads_back(body in "[ -~\u{a0}-\u{17f}\u{2013}\u{1f600}\n\t]{0,400}") {
            let raw = build_email(&acme(), "rep@dealer.example", "Hi", &body, &body, None).unwrap();
            let parsed = parse(&raw);
            prop_assert_eq!(&parsed.parts[0].1, &body);
            prop_assert_eq!(&parsed.parts[1].1, &body);
        }

        #[test]
        fn any_one_line_subject_and_name_read_back(
            subject in "[ -~åäöÅÄÖé€\u{1f600}]{1,200}",
            name in "[ -~åäöÅÄÖ]{1,60}",
        ) {
            let from = Mailbox { name: name.clone(), address: "rewards@acme.example".into() };
            let raw = build_email(&from, "rep@dealer.example", &subject, "t", "h", None).unwrap();
            let text = String::from_utf8(raw.clone()).unwrap();
            for line in text.split("\r\n\r\n").next().unwrap().split("\r\n") {
                prop_assert!(line.len() <= HEADER_LINE, "{}", line);
            }
            let parsed = parse(&raw);
            prop_assert_eq!(parsed.header("Subject"), Some(subject.as_str()));
            let shown = parsed.header("From").unwrap();
            if name.trim().is_empty() {
                prop_assert_eq!(shown, "<rewards@acme.example>");
            } else if name.is_ascii() && !name.contains("=?") {
                let quoted = format!("\"{}\" <rewards@acme.example>", name.replace('\\', "\\\\").replace('"', "\\\""));
                prop_assert_eq!(shown, quoted.as_str());
            } else {
                prop_assert_eq!(shown, format!("{name} <rewards@acme.example>"));
            }
        }
    }
}
