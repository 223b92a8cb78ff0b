//! `carrot preview`: renders one message template for one participant, as the sender would,
//! into a file a person opens: an HTML page with the subject, the email, its plain text and
//! the SMS, or (`.eml`) the whole email as it would go on the wire.

use crate::{REFUSED, parse_config, print_errors};
use anyhow::{Context, bail};
use carrot::domain::message::{Channel, NotificationRequest, Recipient, unsubscribe_token};
use carrot::domain::mime::{Mailbox, build_email};
use carrot::domain::participant::Profile;
use carrot::domain::template::{KINDS, MessageContext, gsm7_length, kind_of, render, sample};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where a preview's links and sender point: a reserved domain, so nothing in a preview
/// reaches a real address.
const PREVIEW_API: &str = "https://carrot.invalid";
const PREVIEW_SENDER: &str = "notifications@carrot.invalid";

pub struct PreviewArgs {
    pub kind: String,
    pub program: PathBuf,
    pub participant: PathBuf,
    pub recipient: Option<Recipient>,
    pub locale: Option<String>,
    pub data: Option<PathBuf>,
    pub out: PathBuf,
}

pub fn parse(args: &[String]) -> Result<PreviewArgs, String> {
    let mut kind = None;
    let (mut program, mut participant, mut recipient, mut locale, mut data, mut out) =
        (None, None, None, None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if !arg.starts_with('-') {
            if kind.replace(arg.clone()).is_some() {
                return Err(format!("preview takes one kind, got another: {arg:?}"));
            }
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let value = inline
            .or_else(|| args.next().cloned())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag {
            "--program" => program = Some(PathBuf::from(value)),
            "--participant" => participant = Some(PathBuf::from(value)),
            "--recipient" => {
                recipient = Some(match value.as_str() {
                    "participant" => Recipient::Participant,
                    "manager" => Recipient::Manager,
                    other => {
                        return Err(format!(
                            "--recipient is participant or manager, got {other:?}"
                        ));
                    }
                })
            }
            "--locale" => locale = Some(value),
            "--data" => data = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            other => return Err(format!("unknown preview option {other:?}")),
        }
    }
    Ok(PreviewArgs {
        kind: kind.ok_or("preview needs the kind of message, e.g. digest")?,
        program: program.ok_or("preview needs --program <config.yaml>")?,
        participant: participant.ok_or("preview needs --participant <participant.json>")?,
        recipient,
        locale,
        data,
        out: out.ok_or("preview needs --out <file.html|file.eml>")?,
    })
}

pub fn preview(args: &PreviewArgs) -> anyhow::Result<ExitCode> {
    let Some(kind) = kind_of(&args.kind) else {
        let kinds: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        bail!(
            "unknown kind {:?}; the kinds are {}",
            args.kind,
            kinds.join(", ")
        );
    };
    let program = match parse_config(&args.program, 1)? {
        Ok((_, program)) => program,
        Err(code) => return Ok(code),
    };
    let config = &program.notifications;
    let profile_json: Value = serde_json::from_str(&crate::read(&args.participant)?)
        .with_context(|| format!("{} is not JSON", args.participant.display()))?;
    let profile = match Profile::from_json(&profile_json) {
        Ok(profile) => profile,
        Err(errors) => {
            print_errors(&args.participant, &errors);
            return Ok(ExitCode::from(REFUSED));
        }
    };
    let (period, sample_data) = sample(kind.name).expect("every kind has a sample");
    let data = match &args.data {
        Some(path) => serde_json::from_str(&crate::read(path)?)
            .with_context(|| format!("{} is not JSON", path.display()))?,
        None => sample_data,
    };
    let recipient = args.recipient.unwrap_or(kind.recipient);
    let participant = args
        .participant
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("participant")
        .to_owned();
    let to = match (recipient, &profile.manager) {
        (Recipient::Manager, Some(manager)) => manager.email.clone(),
        (Recipient::Manager, None) => {
            say!("{} names no manager", args.participant.display());
            return Ok(ExitCode::from(REFUSED));
        }
        (Recipient::Participant, _) => profile.email.clone(),
    };
    let locale = config.locale_for(
        args.locale.as_deref().unwrap_or(&profile.locale),
        &program.locale,
    );
    let request = NotificationRequest {
        id: format!("preview:{}:{participant}", kind.name),
        program: program.id.clone(),
        participant: participant.clone(),
        recipient,
        kind: kind.name.to_owned(),
        channel: Channel::Email,
        essential: kind.essential,
        period,
        data,
        created_at: jiff::Timestamp::now().to_string(),
    };
    let unsubscribe_url = (!kind.essential && recipient == Recipient::Participant).then(|| {
        let token = unsubscribe_token(b"preview", &program.id, &participant);
        format!("{PREVIEW_API}/v1/unsubscribe?token={token}")
    });
    let context = MessageContext::new(
        &program.name,
        config,
        &profile,
        &request,
        unsubscribe_url.clone(),
    );
    let message = match render(kind.name, recipient, locale, &context) {
        Ok(message) => message,
        Err(error) => {
            say!("{error}");
            return Ok(ExitCode::from(REFUSED));
        }
    };
    let from = Mailbox {
        name: config
            .from_name
            .clone()
            .unwrap_or_else(|| program.name.clone()),
        address: PREVIEW_SENDER.to_owned(),
    };
    let eml = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("eml"));
    let bytes = if eml {
        match build_email(
            &from,
            &to,
            &message.subject,
            &message.text,
            &message.html,
            unsubscribe_url.as_deref(),
        ) {
            Ok(bytes) => bytes,
            Err(error) => {
                say!("the email cannot be built: {error}");
                return Ok(ExitCode::from(REFUSED));
            }
        }
    } else {
        page(kind.name, locale, &from, &to, &message).into_bytes()
    };
    write(&args.out, &bytes)?;
    say!(
        "wrote {}: {} in {locale} to {to}",
        args.out.display(),
        kind.name
    );
    say!("subject: {}", message.subject);
    say!("sms: {}", sms_summary(&message.sms));
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// `148 characters, GSM-7, 1 part` (parts of 153 septets once it needs more than one).
fn sms_summary(sms: &str) -> String {
    match gsm7_length(sms) {
        Some(n) => format!(
            "{n} characters, GSM-7, {} part{}",
            parts(n, 160, 153),
            if parts(n, 160, 153) == 1 { "" } else { "s" }
        ),
        None => {
            let n = sms.encode_utf16().count();
            format!("{n} characters, UCS-2, {} part(s)", parts(n, 70, 67))
        }
    }
}

fn parts(length: usize, single: usize, each: usize) -> usize {
    if length <= single {
        1
    } else {
        length.div_ceil(each)
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The preview page: the email's own body shown in place (no frame), then the plain text
/// and the SMS as they would arrive.
fn page(
    kind: &str,
    locale: &str,
    from: &Mailbox,
    to: &str,
    message: &carrot::domain::template::Rendered,
) -> String {
    let body = message
        .html
        .split_once("<body")
        .and_then(|(_, rest)| rest.split_once('>'))
        .and_then(|(_, rest)| rest.rsplit_once("</body>"))
        .map_or(message.html.as_str(), |(body, _)| body);
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview: {kind} ({locale})</title>
</head>
<body style="margin:0;padding:24px;background-color:#dddddd;font-family:Arial,Helvetica,sans-serif;color:#222222;">
<main style="max-width:760px;margin:0 auto;">
<h1 style="font-size:20px;margin:0 0 12px 0;">Preview: {kind} ({locale})</h1>
<table role="presentation" style="width:100%;background:#ffffff;border-collapse:collapse;margin:0 0 24px 0;">
<tr><th scope="row" align="left" style="padding:6px 10px;width:90px;">From</th><td style="padding:6px 10px;">{from_name} &lt;{from_address}&gt;</td></tr>
<tr><th scope="row" align="left" style="padding:6px 10px;">To</th><td style="padding:6px 10px;">{to}</td></tr>
<tr><th scope="row" align="left" style="padding:6px 10px;">Subject</th><td style="padding:6px 10px;font-weight:bold;">{subject}</td></tr>
</table>
<h2 style="font-size:16px;margin:0 0 8px 0;">Email</h2>
<div lang="{locale}" style="margin:0 0 24px 0;">
{body}
</div>
<h2 style="font-size:16px;margin:0 0 8px 0;">Plain text</h2>
<pre lang="{locale}" style="background:#ffffff;padding:16px;white-space:pre-wrap;font-size:14px;margin:0 0 24px 0;">{text}</pre>
<h2 style="font-size:16px;margin:0 0 8px 0;">SMS ({sms_summary})</h2>
<pre lang="{locale}" style="background:#ffffff;padding:16px;white-space:pre-wrap;font-size:14px;margin:0;">{sms}</pre>
</main>
</body>
</html>
"#,
        from_name = escape(&from.name),
        from_address = escape(&from.address),
        to = escape(to),
        subject = escape(&message.subject),
        text = escape(&message.text),
        sms_summary = sms_summary(&message.sms),
        sms = escape(&message.sms),
    )
}
