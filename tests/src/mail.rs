//! Reading the emails the sender built, as moto's SES recorded them: headers, RFC 2047
//! words and the quoted-printable parts of a multipart message. For the demo and the tests.

/// A header of a MIME message (the first of the name), unfolded.
pub fn header(raw: &str, name: &str) -> Option<String> {
    let head = raw.split("\r\n\r\n").next()?;
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.split("\r\n").find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_owned())
    })
}

/// A header value with its `=?UTF-8?B?…?=` words decoded; the space between two words is
/// not text (RFC 2047 §6.2).
pub fn decode_words(value: &str) -> String {
    use base64::Engine;
    const OPEN: &str = "=?UTF-8?B?";
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find(OPEN) {
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        let word = &rest[start + OPEN.len()..];
        let Some(end) = word.find("?=") else {
            break;
        };
        match base64::engine::general_purpose::STANDARD.decode(&word[..end]) {
            Ok(bytes) => out.push_str(&String::from_utf8_lossy(&bytes)),
            Err(_) => out.push_str(&rest[start..start + OPEN.len() + end + 2]),
        }
        rest = &word[end + 2..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

/// The part of a multipart message with the given content type, its quoted-printable decoded.
pub fn mime_part(raw: &str, content_type: &str) -> Option<String> {
    let boundary = header(raw, "Content-Type")?
        .split("boundary=\"")
        .nth(1)?
        .split('"')
        .next()?
        .to_owned();
    let part = raw
        .split(&format!("\r\n--{boundary}"))
        .skip(1)
        .find_map(|part| {
            let (head, body) = part.split_once("\r\n\r\n")?;
            head.contains(content_type).then_some(body)
        })?;
    let encoded = part.replace("=\r\n", "");
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        match (byte, tail) {
            (b'=', [a, b, tail @ ..]) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                let hex = [*a, *b];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                rest = tail;
            }
            _ => {
                bytes.push(byte);
                rest = tail;
            }
        }
    }
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
