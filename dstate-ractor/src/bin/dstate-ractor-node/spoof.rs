//! A bare ractor_cluster node that holds the cookie and forges dstate frames.

use std::time::Duration;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{Actor, ActorProcessingErr, ActorRef, Message};
use ractor_cluster::NodeServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use super::say;

/// A cast shaped like a dstate frame, with a token nobody handed out.
struct Forged(u128);

impl Message for Forged {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        let mut args = self.0.to_be_bytes().to_vec();
        args.extend_from_slice(b"forged frame");
        Ok(SerializedMessage::Cast {
            variant: String::from("dstate.frame"),
            args,
            metadata: None,
        })
    }
}

struct Idle;

impl Actor for Idle {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

pub(crate) async fn run(cookie: String, seeds: Vec<String>) {
    let server = NodeServer::new(
        0,
        cookie,
        format!("spoofer-{}", std::process::id()),
        String::from("127.0.0.1"),
        None,
        None,
    )
    .with_listen_addr([127, 0, 0, 1].into());
    let Ok((node_server, _)) = Actor::spawn(None, server, ()).await else {
        eprintln!("node server failed to start");
        std::process::exit(1);
    };
    // Keep one local actor so the process has something to advertise.
    let _idle = Actor::spawn(None, Idle, ()).await;
    for seed in seeds {
        if let Err(err) = ractor_cluster::client_connect(&node_server, seed.as_str()).await {
            say(format!("ERR connect {err}"));
        }
    }
    say("LISTENING spoofer");
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match line.trim() {
            "spoof" => {
                let targets = ractor::pg::get_scoped_members(
                    &String::from("dstate.cluster"),
                    &String::from("dstate.endpoints"),
                );
                let mut sent = 0;
                for target in targets {
                    let target: ActorRef<Forged> = target.into();
                    for guess in 0..10u128 {
                        if target.cast(Forged(guess.wrapping_mul(0x9e37_79b9))).is_ok() {
                            sent += 1;
                        }
                    }
                }
                say(format!("SPOOFED {sent}"));
            }
            "quit" => break,
            _ => say("ERR unknown"),
        }
    }
    let _ = node_server
        .stop_and_wait(None, Some(Duration::from_secs(1)))
        .await;
}
