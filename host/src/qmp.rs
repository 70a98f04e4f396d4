//! QEMU's own control socket (QMP), asked one thing: where the guest's vCPUs are when its
//! agent never answers. Each vCPU is halted (the kernel's idle loop, waiting for an
//! interrupt) or running, in the kernel or in user space, at some address that
//! [`crate::kernels::symbols`] names. berth drives guests through their agent, never
//! through QMP; this socket only serves that report.
// QEMU listens on a Unix socket; elsewhere (Windows) berth asks nothing.
#![cfg_attr(not(unix), allow(dead_code))]

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("QEMU closed its control socket")]
    Closed,
    #[error("QEMU refused {command}: {desc}")]
    Refused { command: String, desc: String },
    #[error("QEMU sent what is not QMP: {0}")]
    Malformed(String),
    #[error("this host's berth has no QMP client")]
    Unsupported,
}

/// One vCPU, as QEMU's `info registers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vcpu {
    pub index: u32,
    pub rip: u64,
    /// In 64-bit mode (QEMU shows `RIP`); else `rip` is the `EIP` of a vCPU in real or
    /// 32-bit mode: one the kernel has not started yet, or still in its boot code.
    pub long_mode: bool,
    /// Its privilege level: 0 in the kernel, 3 in user space.
    pub cpl: u8,
    /// Waiting for an interrupt (`hlt`): the kernel's idle loop.
    pub halted: bool,
}

/// What QEMU said about a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// QEMU's run state: `running`, `paused`, `internal-error`, `guest-panicked`...
    pub status: String,
    pub vcpus: Vec<Vcpu>,
}

impl Report {
    /// The report as lines for an error message. `name` gives a kernel address's
    /// function (`default_idle+0x1e`) when the kernel's symbols are known; `unnamed` says
    /// why they are not, when they are not.
    pub fn describe(&self, name: &dyn Fn(u64) -> Option<String>, unnamed: Option<&str>) -> String {
        let mut out = format!(
            "\n--- where the guest's vCPUs were (QEMU's state: {}) ---",
            self.status
        );
        if self.vcpus.is_empty() {
            out.push_str("\n(QEMU showed no vCPU)");
        }
        for v in &self.vcpus {
            let what = if v.halted { "halted (idle)" } else { "running" };
            let place = match v.cpl {
                _ if !v.long_mode => format!(
                    "before 64-bit mode at {:#x} (a vCPU the kernel has not started yet, \
                     or boot code)",
                    v.rip
                ),
                0 => match name(v.rip) {
                    Some(f) => format!("in the kernel at {f} ({:#x})", v.rip),
                    None => format!("in the kernel at {:#x}", v.rip),
                },
                _ => format!("in user space at {:#x}", v.rip),
            };
            out.push_str(&format!("\n vCPU {}: {what} {place}", v.index));
        }
        if let Some(why) = unnamed {
            out.push_str(&format!("\n(kernel addresses are not named: {why})"));
        }
        out
    }
}

/// Parses `info registers -a`: a `CPU#N` line, then its registers, for each vCPU (`RIP`
/// in 64-bit mode, `EIP` before it).
pub fn parse_registers(text: &str) -> Vec<Vcpu> {
    let mut vcpus = Vec::new();
    let mut index = None;
    for line in text.lines() {
        if let Some(n) = line.trim().strip_prefix("CPU#") {
            index = n.trim().parse::<u32>().ok();
            continue;
        }
        let (rip, long_mode) = match (field(line, "RIP"), field(line, "EIP")) {
            (Some(rip), _) => (rip, true),
            (None, Some(eip)) => (eip, false),
            (None, None) => continue,
        };
        let Some(i) = index else {
            continue;
        };
        let Some(rip) = u64::from_str_radix(rip, 16).ok() else {
            continue;
        };
        vcpus.push(Vcpu {
            index: i,
            rip,
            long_mode,
            cpl: field(line, "CPL").and_then(|c| c.parse().ok()).unwrap_or(0),
            halted: field(line, "HLT") == Some("1"),
        });
        index = None;
    }
    vcpus
}

/// The value of `NAME=value` among a line's space-separated fields.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

/// Asks the QEMU listening on `socket` for its state and its vCPUs' registers, within
/// `deadline` in all.
#[cfg(unix)]
pub async fn report(socket: &std::path::Path, deadline: Duration) -> Result<Report, QmpError> {
    let ask = async {
        let (rd, wr) = tokio::net::UnixStream::connect(socket).await?.into_split();
        Session::open(tokio::io::BufReader::new(rd), wr)
            .await?
            .report()
            .await
    };
    tokio::time::timeout(deadline, ask)
        .await
        .map_err(|_| QmpError::Timeout(deadline))?
}

#[cfg(not(unix))]
pub async fn report(_socket: &std::path::Path, _deadline: Duration) -> Result<Report, QmpError> {
    Err(QmpError::Unsupported)
}

#[derive(Serialize)]
struct Command<'a, A: Serialize> {
    execute: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<A>,
}

#[derive(Serialize)]
struct HumanCommand<'a> {
    #[serde(rename = "command-line")]
    command_line: &'a str,
}

/// QEMU's first line: `{"QMP": {"version": ..., "capabilities": [...]}}`.
#[derive(Deserialize)]
struct Greeting {
    #[serde(rename = "QMP")]
    _qmp: serde::de::IgnoredAny,
}

/// A line from QEMU: a command's return or its error, or an event (skipped).
#[derive(Deserialize)]
struct Reply<T> {
    #[serde(rename = "return")]
    ret: Option<T>,
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct ErrorBody {
    desc: String,
}

#[derive(Deserialize)]
struct Status {
    status: String,
}

/// A QMP connection past its greeting and capabilities negotiation.
struct Session<R, W> {
    rd: R,
    wr: W,
}

impl<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    async fn open(mut rd: R, wr: W) -> Result<Self, QmpError> {
        let greeting = read_line(&mut rd).await?;
        serde_json::from_str::<Greeting>(&greeting)
            .map_err(|_| QmpError::Malformed(greeting.trim().to_string()))?;
        let mut session = Session { rd, wr };
        session
            .execute::<serde::de::IgnoredAny, ()>("qmp_capabilities", None)
            .await?;
        Ok(session)
    }

    async fn report(&mut self) -> Result<Report, QmpError> {
        let status: Status = self.execute::<_, ()>("query-status", None).await?;
        let registers: String = self
            .execute(
                "human-monitor-command",
                Some(HumanCommand {
                    command_line: "info registers -a",
                }),
            )
            .await?;
        Ok(Report {
            status: status.status,
            vcpus: parse_registers(&registers),
        })
    }

    async fn execute<T: serde::de::DeserializeOwned, A: Serialize>(
        &mut self,
        command: &str,
        arguments: Option<A>,
    ) -> Result<T, QmpError> {
        let mut line = serde_json::to_vec(&Command {
            execute: command,
            arguments,
        })
        .map_err(|e| QmpError::Malformed(e.to_string()))?;
        line.push(b'\n');
        self.wr.write_all(&line).await?;
        loop {
            let text = read_line(&mut self.rd).await?;
            let reply: Reply<T> = serde_json::from_str(&text)
                .map_err(|_| QmpError::Malformed(text.trim().to_string()))?;
            match reply {
                Reply { ret: Some(v), .. } => return Ok(v),
                Reply { error: Some(e), .. } => {
                    return Err(QmpError::Refused {
                        command: command.to_string(),
                        desc: e.desc,
                    })
                }
                // An event ({"event": ...}): QEMU may send one at any time.
                Reply { .. } => continue,
            }
        }
    }
}

async fn read_line(rd: &mut (impl AsyncBufRead + Unpin)) -> Result<String, QmpError> {
    let mut line = String::new();
    match rd.read_line(&mut line).await? {
        0 => Err(QmpError::Closed),
        _ => Ok(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two vCPUs as QEMU 7.2 prints them (the registers that do not matter cut).
    const REGISTERS: &str = "\r\nCPU#0\r\nRAX=0000000000000000 RBX=0000000000000000 RCX=4000000000000000 RDX=0000000000000000\r\n\
RIP=ffffffff8101b91e RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n\
ES =0000 0000000000000000 00000000 00000000\r\n\
XMM00=00000000005e42a0 0000000000000000 XMM01=00000000005e22c0 000000000042ccc9\r\n\
\r\nCPU#1\r\nRAX=0000000000000001 RBX=0000000000000000 RCX=0000000000000000 RDX=0000000000000000\r\n\
RIP=0000000000401a2b RFL=00000202 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0\r\n";

    #[test]
    fn registers_give_each_vcpu_its_place_and_whether_it_is_halted() {
        assert_eq!(
            parse_registers(REGISTERS),
            [
                Vcpu {
                    index: 0,
                    rip: 0xffff_ffff_8101_b91e,
                    long_mode: true,
                    cpl: 0,
                    halted: true
                },
                Vcpu {
                    index: 1,
                    rip: 0x401a2b,
                    long_mode: true,
                    cpl: 3,
                    halted: false
                },
            ]
        );
        assert_eq!(parse_registers("Error: no CPU\n"), []);
    }

    /// A slow boot (a distro kernel under TCG) at the deadline: the kernel has not yet
    /// started its second vCPU, which waits in real mode, where QEMU shows `EIP`.
    #[test]
    fn a_vcpu_not_yet_in_64_bit_mode_is_reported_too() {
        let text = "CPU#0\r\nRAX=0000000000000000 RBX=0000000000000000\r\n\
            RIP=ffffffff9fc6c729 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n\
            CPU#1\r\nEAX=00000000 EBX=00000000 ECX=00000000 EDX=00060fb1\r\n\
            EIP=0000fff0 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n";
        let report = Report {
            status: "running".into(),
            vcpus: parse_registers(text),
        };
        assert_eq!(report.vcpus.len(), 2, "{:?}", report.vcpus);
        let text = report.describe(&|_| None, None);
        assert!(
            text.contains("vCPU 0: running in the kernel at 0xffffffff9fc6c729"),
            "{text}"
        );
        assert!(
            text.contains(
                "vCPU 1: halted (idle) before 64-bit mode at 0xfff0 (a vCPU the kernel has \
                 not started yet, or boot code)"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_description_names_kernel_functions_and_says_why_it_cannot() {
        let report = Report {
            status: "running".into(),
            vcpus: parse_registers(REGISTERS),
        };
        let named = report.describe(
            &|a| (a == 0xffff_ffff_8101_b91e).then(|| "amd_e400_idle+0x1e".to_string()),
            None,
        );
        assert!(named.contains("QEMU's state: running"), "{named}");
        assert!(
            named.contains(
                "vCPU 0: halted (idle) in the kernel at amd_e400_idle+0x1e (0xffffffff8101b91e)"
            ),
            "{named}"
        );
        assert!(
            named.contains("vCPU 1: running in user space at 0x401a2b"),
            "{named}"
        );
        let unnamed = report.describe(&|_| None, Some("the kernel randomizes its base"));
        assert!(
            unnamed.contains("vCPU 0: halted (idle) in the kernel at 0xffffffff8101b91e"),
            "{unnamed}"
        );
        assert!(
            unnamed.contains("(kernel addresses are not named: the kernel randomizes its base)"),
            "{unnamed}"
        );
    }

    /// A fake QEMU on the other end of a pipe: the greeting, the capabilities' answer,
    /// an event in the way, then the two answers the report needs.
    #[tokio::test]
    async fn a_report_reads_past_events_and_checks_what_was_asked() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let fake = tokio::spawn(async move {
            let (rd, mut wr) = tokio::io::split(server);
            let mut rd = tokio::io::BufReader::new(rd);
            let mut asked = Vec::new();
            wr.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n")
                .await
                .unwrap();
            let registers = serde_json::to_string(REGISTERS).unwrap();
            let answers = [
                "{\"return\": {}}".to_string(),
                "{\"event\": \"RTC_CHANGE\", \"data\": {}}\r\n{\"return\": {\"status\": \"running\", \"running\": true}}".to_string(),
                format!("{{\"return\": {registers}}}"),
            ];
            for answer in answers {
                asked.push(read_line(&mut rd).await.unwrap());
                wr.write_all(format!("{answer}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
            asked
        });
        let (rd, wr) = tokio::io::split(client);
        let report = Session::open(tokio::io::BufReader::new(rd), wr)
            .await
            .unwrap()
            .report()
            .await
            .unwrap();
        assert_eq!(report.status, "running");
        assert_eq!(report.vcpus.len(), 2);
        let asked = fake.await.unwrap();
        assert_eq!(asked[0].trim(), r#"{"execute":"qmp_capabilities"}"#);
        assert_eq!(asked[1].trim(), r#"{"execute":"query-status"}"#);
        assert_eq!(
            asked[2].trim(),
            r#"{"execute":"human-monitor-command","arguments":{"command-line":"info registers -a"}}"#
        );
    }

    #[tokio::test]
    async fn a_refusal_names_the_command() {
        let (client, server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let (rd, mut wr) = tokio::io::split(server);
            let mut rd = tokio::io::BufReader::new(rd);
            wr.write_all(b"{\"QMP\": {}}\n").await.unwrap();
            read_line(&mut rd).await.unwrap();
            wr.write_all(b"{\"return\": {}}\n").await.unwrap();
            read_line(&mut rd).await.unwrap();
            wr.write_all(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}}\n")
                .await
                .unwrap();
        });
        let (rd, wr) = tokio::io::split(client);
        let mut session = Session::open(tokio::io::BufReader::new(rd), wr)
            .await
            .unwrap();
        let e = session.report().await.unwrap_err();
        assert_eq!(e.to_string(), "QEMU refused query-status: no");
    }

    #[tokio::test]
    async fn something_that_is_not_qemu_is_refused() {
        let (client, server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut server = server;
            server.write_all(b"SSH-2.0-OpenSSH\r\n").await.unwrap();
        });
        let (rd, wr) = tokio::io::split(client);
        let e = Session::open(tokio::io::BufReader::new(rd), wr)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, QmpError::Malformed(ref s) if s == "SSH-2.0-OpenSSH"),
            "{e}"
        );
    }
}
