//! Code delivery off the request path. A code request hands a job to this
//! queue whether or not anything is to be sent, so it does the same work and
//! answers in the same time either way; the worker stores the code and hands
//! the message to the mailer (or SMS sender) afterwards, one job at a time.

use crate::Delivery;
use sesame_core::{Error, ErrorCode};
use sesame_credentials::codes::CODE_TTL;
use sesame_credentials::{CodePurpose, Login, LoginType, VerificationCode, VerificationCodeStore};
use sesame_delivery::CodeKind;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Jobs waiting before the queue refuses with `503 overloaded`.
const QUEUE: usize = 1024;

/// Live codes kept per purpose and login: each request is a flow of its own.
pub(crate) const LIVE_CODES: i64 = 5;

/// A code to store and send, or nothing to do (for a login it does not fit).
pub(crate) struct CodeJob {
    /// The code to store and send; `None` when nothing is sent.
    pub send: Option<(VerificationCode, String)>,
    /// What it is for.
    pub purpose: CodePurpose,
    /// Where it goes.
    pub login: Login,
}

enum Job {
    Code(Box<CodeJob>),
    Flush(oneshot::Sender<()>),
}

/// The queue's sending side.
#[derive(Clone)]
pub(crate) struct Outgoing(mpsc::Sender<Job>);

impl Outgoing {
    /// Starts the worker.
    pub(crate) fn spawn(codes: Arc<dyn VerificationCodeStore>, delivery: Delivery) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, codes, delivery));
        Self(tx)
    }

    /// Queues a job; a full queue refuses at once, for every login alike.
    pub(crate) fn enqueue(&self, job: CodeJob) -> Result<(), Error> {
        self.0
            .try_send(Job::Code(Box::new(job)))
            .map_err(|_| Error::Busy {
                code: ErrorCode::Overloaded,
                retry_after_secs: 1,
            })
    }

    /// Waits until every job queued before this call is done.
    pub(crate) async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.0.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    codes: Arc<dyn VerificationCodeStore>,
    delivery: Delivery,
) {
    while let Some(job) = rx.recv().await {
        match job {
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Code(job) => {
                let CodeJob {
                    send: Some((record, code)),
                    purpose,
                    login,
                } = *job
                else {
                    continue;
                };
                // Stored first: the code must check once the message arrives.
                if let Err(e) = codes.insert_code(&record, LIVE_CODES).await {
                    tracing::error!(error = %e, "storing a code failed; nothing sent");
                    continue;
                }
                deliver(&delivery, purpose, &login, &code).await;
            }
        }
    }
}

async fn deliver(delivery: &Delivery, purpose: CodePurpose, login: &Login, code: &str) {
    let kind = match purpose {
        CodePurpose::Register => CodeKind::Register,
        CodePurpose::SignIn => CodeKind::SignIn,
        CodePurpose::Bind => CodeKind::Bind,
        CodePurpose::Verify => CodeKind::Verify,
        CodePurpose::Reset => CodeKind::Reset,
    };
    let minutes = CODE_TTL.whole_minutes();
    let sent = match login.login_type {
        LoginType::Phone => {
            let msg = delivery
                .templates
                .code_sms(&login.identifier, kind, code, minutes);
            delivery.sms.send(&msg).await
        }
        _ => {
            let msg = delivery
                .templates
                .code(&login.identifier, kind, code, minutes);
            delivery.mailer.send(&msg).await
        }
    };
    if let Err(e) = sent {
        tracing::error!(error = %e, login_type = login.login_type.as_str(), "code delivery failed");
    }
}
