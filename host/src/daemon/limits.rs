//! Resource requests checked against what a container can live in and what the machine
//! has, before anything is created: Docker's floor for memory (6 MiB; below it a
//! container dies of OOM before its command runs) and the machine's CPUs for `--cpus` and
//! `--cpuset-cpus`. The messages are Docker's own.

use berth_protocol::Resources;

use super::error::ApiError;

/// Docker's smallest memory limit.
pub const MIN_MEMORY: u64 = 6 << 20;

/// Refuses a request no container of this machine (`cpus` CPUs) can honour.
pub fn check(res: &Resources, cpus: u32) -> Result<(), ApiError> {
    if let Some(m) = res.memory {
        if m < MIN_MEMORY {
            return Err(ApiError::bad_request(format!(
                "Minimum memory limit allowed is 6MB (asked for {m} bytes)"
            )));
        }
    }
    if let Some(milli) = res.millicpus {
        if milli < 10 || milli > u64::from(cpus) * 1000 {
            return Err(ApiError::bad_request(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available on this machine (asked for {}.{:03})",
                milli / 1000,
                milli % 1000
            )));
        }
    }
    if let Some(set) = res.cpuset_cpus.as_deref() {
        let requested = parse_cpuset(set).map_err(|why| {
            ApiError::bad_request(format!("Invalid value {set} for cpuset cpus: {why}"))
        })?;
        if requested.iter().any(|c| *c >= cpus) {
            let available = match cpus {
                1 => "0".to_string(),
                n => format!("0-{}", n - 1),
            };
            return Err(ApiError::bad_request(format!(
                "Requested CPUs are not available - requested {set}, available: {available}"
            )));
        }
    }
    Ok(())
}

/// A cpuset list (`0-2,4`) as CPU numbers.
pub fn parse_cpuset(set: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in set.split(',') {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("{part:?} is an empty range"));
                }
                if b - a > 4096 {
                    return Err(format!("{part:?} is too large a range"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(f: impl FnOnce(&mut Resources)) -> Resources {
        let mut r = Resources::default();
        f(&mut r);
        r
    }

    #[test]
    fn memory_below_docker_floor_is_refused() {
        let e = check(&res(|r| r.memory = Some(1 << 20)), 2).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(
            e.message.contains("Minimum memory limit allowed is 6MB"),
            "{}",
            e.message
        );
        assert!(check(&res(|r| r.memory = Some(MIN_MEMORY)), 2).is_ok());
    }

    #[test]
    fn more_cpus_than_the_machine_has_are_refused() {
        let e = check(&res(|r| r.millicpus = Some(3000)), 2).unwrap_err();
        assert!(e.message.contains("from 0.01 to 2.00"), "{}", e.message);
        assert!(e.message.contains("3.000"), "{}", e.message);
        assert!(check(&res(|r| r.millicpus = Some(2000)), 2).is_ok());
        assert!(check(&res(|r| r.millicpus = Some(5)), 2).is_err());
    }

    #[test]
    fn cpusets_beyond_the_machine_are_refused() {
        let e = check(&res(|r| r.cpuset_cpus = Some("1-3".into())), 2).unwrap_err();
        assert!(
            e.message.contains("requested 1-3, available: 0-1"),
            "{}",
            e.message
        );
        let e = check(&res(|r| r.cpuset_cpus = Some("1".into())), 1).unwrap_err();
        assert!(e.message.contains("available: 0"), "{}", e.message);
        assert!(check(&res(|r| r.cpuset_cpus = Some("0,1".into())), 2).is_ok());
        let e = check(&res(|r| r.cpuset_cpus = Some("x".into())), 2).unwrap_err();
        assert!(e.message.contains("Invalid value x"), "{}", e.message);
    }

    #[test]
    fn cpuset_lists_parse() {
        assert_eq!(parse_cpuset("0-2,4").unwrap(), [0, 1, 2, 4]);
        assert_eq!(parse_cpuset("3").unwrap(), [3]);
        assert!(parse_cpuset("2-1").is_err());
        assert!(parse_cpuset("").is_err());
        assert!(parse_cpuset("0-99999").is_err());
    }
}
