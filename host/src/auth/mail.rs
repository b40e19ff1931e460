//! Email: the messages the auth flows send (links and codes), delivered
//! over SMTP when a server is configured, otherwise written to the log and
//! kept in an outbox that admins read (`GET /api/admin/outbox`).
//!
//! Delivery runs in the background so an answer never waits for (or
//! reveals, by its timing) a mail being sent.

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Messages the outbox keeps (the oldest are dropped).
pub const OUTBOX_SIZE: usize = 100;

/// A message as written.
#[derive(Debug, Clone, Serialize)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// When it was written.
    pub at: String,
}

enum Delivery {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(Mutex<VecDeque<Mail>>),
}

/// The mailer.
pub struct Mailer {
    from: Mailbox,
    delivery: Delivery,
}

impl Mailer {
    /// Delivers over `smtp_url` (`smtp://host:port` plain, `?tls=required`
    /// for STARTTLS, `smtps://` for TLS; credentials as `user:pass@`), or to
    /// the outbox when there is none.
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| anyhow::anyhow!("the sender address `{from}` is not valid: {e}"))?;
        let delivery = match smtp_url {
            Some(url) => Delivery::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("the SMTP URL is not valid: {e}"))?
                    .build(),
            ),
            None => Delivery::Outbox(Mutex::new(VecDeque::new())),
        };
        Ok(Self { from, delivery })
    }

    /// Sends a message in the background.
    pub fn send(self: &Arc<Self>, to: &str, subject: &str, text: String) {
        let mail = Mail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            text,
            at: crate::db::values::now(),
        };
        match &self.delivery {
            Delivery::Outbox(outbox) => {
                tracing::info!(to = %mail.to, subject = %mail.subject, text = %mail.text, "mail (no SMTP server configured: kept in the outbox)");
                let mut outbox = outbox.lock().unwrap_or_else(|e| e.into_inner());
                if outbox.len() == OUTBOX_SIZE {
                    outbox.pop_front();
                }
                outbox.push_back(mail);
            }
            Delivery::Smtp(_) => {
                let mailer = self.clone();
                tokio::spawn(async move {
                    if let Err(err) = mailer.deliver(&mail).await {
                        tracing::error!(to = %mail.to, subject = %mail.subject, "mail not delivered: {err:#}");
                    }
                });
            }
        }
    }

    async fn deliver(&self, mail: &Mail) -> anyhow::Result<()> {
        let Delivery::Smtp(transport) = &self.delivery else {
            return Ok(());
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse()?)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())?;
        transport.send(message).await?;
        Ok(())
    }

    /// The outbox, newest first (`None` when mail goes to an SMTP server).
    pub fn outbox(&self) -> Option<Vec<Mail>> {
        match &self.delivery {
            Delivery::Outbox(outbox) => Some(
                outbox
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .rev()
                    .cloned()
                    .collect(),
            ),
            Delivery::Smtp(_) => None,
        }
    }
}
