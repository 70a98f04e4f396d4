//! The container-vs-VM report: the articles' kind of table (each measure's median and
//! spread, per kernel, with the ratios that answer "how much does a container save"), the
//! JSON of every number, and an SVG bar chart per measure with the kernels side by side
//! (plotters).

use std::path::Path;

use plotters::prelude::*;

use super::{KernelReport, Stat};

fn s(v: Option<Stat>) -> String {
    match v {
        Some(s) if s.runs > 1 && s.max > s.min => {
            format!("{:.3}s ({:.3}-{:.3})", s.median, s.min, s.max)
        }
        Some(s) => format!("{:.3}s", s.median),
        None => "-".into(),
    }
}

fn mib(v: Option<f64>) -> String {
    v.map(|m| format!("{m:.1} MiB"))
        .unwrap_or_else(|| "-".into())
}

fn ratio(a: Option<Stat>, b: Option<Stat>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}x", a.median / b.median),
        _ => "-".into(),
    }
}

/// The table, one column per kernel.
pub fn table(reports: &[KernelReport]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&KernelReport) -> String| {
        rows.push((name.to_string(), reports.iter().map(f).collect()));
    };
    row("release", &|r| r.release.clone());
    row("start-up: cold VM to a command", &|r| s(r.startup.cold_vm));
    row("start-up: cold container (machine boot included)", &|r| {
        s(r.startup.cold_container)
    });
    row("start-up: container on a running machine", &|r| {
        s(r.startup.warm_container)
    });
    row("start-up: exec", &|r| s(r.startup.exec));
    row("start-up: crun run in the same guest", &|r| {
        s(r.startup.crun_run)
    });
    row("start-up: crun exec in the same guest", &|r| {
        s(r.startup.crun_exec)
    });
    row("  warm container / cold VM", &|r| {
        ratio(r.startup.warm_container, r.startup.cold_vm)
    });
    row("  warm container / crun run", &|r| {
        ratio(r.startup.warm_container, r.startup.crun_run)
    });
    row("memory: QEMU RSS (idle machine)", &|r| {
        mib(r.memory.qemu_rss)
    });
    row("memory: daemon RSS", &|r| mib(r.memory.daemon_rss));
    row("memory: guest used (idle machine)", &|r| {
        mib(r.memory.guest_used)
    });
    row("memory: agent RSS", &|r| mib(r.memory.agent_rss));
    row("memory: per idle container", &|r| {
        mib(r.memory.per_container)
    });
    row("density: idle containers in the budget", &|r| {
        format!(
            "{} in {} MiB",
            r.density
                .containers
                .map(|c| c.to_string())
                .unwrap_or("-".into()),
            r.density.budget_mib
        )
    });
    row("density: idle VMs in the budget", &|r| {
        format!(
            "{} in {} MiB",
            r.density.vms.map(|c| c.to_string()).unwrap_or("-".into()),
            r.density.budget_mib
        )
    });
    row("CPU loop: container", &|r| s(r.cpu.container));
    row("CPU loop: guest", &|r| s(r.cpu.guest));
    row("CPU loop: host", &|r| s(r.cpu.host));
    row("  container / guest", &|r| {
        ratio(r.cpu.container, r.cpu.guest)
    });
    row("  guest / host", &|r| ratio(r.cpu.guest, r.cpu.host));
    row("tmpfs write: container", &|r| s(r.io_write.container));
    row("tmpfs write: guest", &|r| s(r.io_write.guest));
    row("tmpfs write: host", &|r| s(r.io_write.host));
    row("tmpfs read: container", &|r| s(r.io_read.container));
    row("tmpfs read: guest", &|r| s(r.io_read.guest));
    row("tmpfs read: host", &|r| s(r.io_read.host));
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let cols: Vec<usize> = (0..reports.len())
        .map(|i| {
            rows.iter()
                .map(|(_, v)| v[i].len())
                .chain(std::iter::once(reports[i].kernel.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{:width$}", "measure (median, min-max)");
    for (r, w) in reports.iter().zip(&cols) {
        out.push_str(&format!("  {:w$}", r.kernel));
    }
    out.push('\n');
    for (name, values) in &rows {
        out.push_str(&format!("{name:width$}"));
        for (v, w) in values.iter().zip(&cols) {
            out.push_str(&format!("  {v:w$}"));
        }
        out.push('\n');
    }
    for r in reports {
        for n in &r.notes {
            out.push_str(&format!("note ({}): {n}\n", r.kernel));
        }
    }
    out
}

/// What a chart's values count, which says how they are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Mib,
    /// Whole instances: written without decimals.
    Instances,
}

impl Unit {
    fn desc(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Mib => "MiB",
            Unit::Instances => "instances",
        }
    }

    /// A bar's value as written above it: enough digits for a small one to read.
    fn bar_label(self, v: f64) -> String {
        match self {
            Unit::Instances => format!("{v:.0}"),
            _ if v >= 100.0 => format!("{v:.0}"),
            _ if v >= 1.0 => format!("{v:.2}"),
            _ => format!("{v:.3}"),
        }
    }
}

/// One bar chart: groups (a measure's parts) × kernels, medians with min-max whiskers.
fn chart(
    path: &Path,
    title: &str,
    unit: Unit,
    groups: &[&str],
    reports: &[KernelReport],
    value: Value,
) -> Result<(), String> {
    let max = reports
        .iter()
        .flat_map(|r| (0..groups.len()).filter_map(move |g| value(r, g)))
        .map(|(_, _, hi)| hi)
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.15;
    let k = reports.len().max(1) as f64;
    let width = 220 + 140 * groups.len() as u32 * reports.len().max(1) as u32 / 2;
    let root = SVGBackend::new(path, (width.clamp(640, 1400), 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..groups.len() as f64, 0f64..max)
        .map_err(|e| e.to_string())?;
    let group_label = |x: &f64| {
        let i = x.floor() as usize;
        match (x - x.floor() - 0.5).abs() < 0.01 {
            true => groups.get(i).map(|g| g.to_string()).unwrap_or_default(),
            false => String::new(),
        }
    };
    let whole = |v: &f64| format!("{v:.0}");
    let mut mesh = c.configure_mesh();
    mesh.disable_x_mesh()
        .x_labels(groups.len() * 2 + 1)
        .x_label_formatter(&group_label)
        .y_desc(unit.desc());
    // Counts get whole labels; seconds and MiB keep plotters' own, which show as many
    // digits as the axis's steps need (0.05, 0.1, 0.15 ...).
    if unit == Unit::Instances {
        mesh.y_label_formatter(&whole);
    }
    mesh.draw().map_err(|e| e.to_string())?;
    for (ki, r) in reports.iter().enumerate() {
        let color = Palette99::pick(ki).to_rgba();
        let bar = 0.8 / k;
        let bars: Vec<_> = (0..groups.len())
            .filter_map(|g| {
                let (m, _, _) = value(r, g)?;
                let x0 = g as f64 + 0.1 + bar * ki as f64;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + bar * 0.9, m)],
                    color.filled(),
                ))
            })
            .collect();
        c.draw_series(bars)
            .map_err(|e| e.to_string())?
            .label(format!("{} ({})", r.kernel, r.release))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        let whiskers: Vec<_> = (0..groups.len())
            .filter_map(|g| {
                let (_, lo, hi) = value(r, g)?;
                let x = g as f64 + 0.1 + bar * ki as f64 + bar * 0.45;
                Some(PathElement::new(vec![(x, lo), (x, hi)], BLACK))
            })
            .collect();
        c.draw_series(whiskers).map_err(|e| e.to_string())?;
        // Each bar's value above it, so a small one still reads.
        let labels: Vec<_> = (0..groups.len())
            .filter_map(|g| {
                let (m, _, hi) = value(r, g)?;
                let x = g as f64 + 0.1 + bar * ki as f64;
                Some(Text::new(
                    unit.bar_label(m),
                    (x, hi + max * 0.02),
                    ("sans-serif", 11),
                ))
            })
            .collect();
        c.draw_series(labels).map_err(|e| e.to_string())?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// A chart's value for a kernel and a group: the median (or the one value) and its spread.
type Value<'a> = &'a dyn Fn(&KernelReport, usize) -> Option<(f64, f64, f64)>;

fn spread(s: Option<Stat>) -> Option<(f64, f64, f64)> {
    s.map(|s| (s.median, s.min, s.max))
}

fn point(v: Option<f64>) -> Option<(f64, f64, f64)> {
    v.map(|v| (v, v, v))
}

/// Writes `report.json` and a chart per measure into `dir`; returns the files written.
pub fn write(dir: &Path, reports: &[KernelReport]) -> Result<Vec<std::path::PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let json = dir.join("report.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(reports).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", json.display()))?;
    let mut files = vec![json];
    let mut draw = |name: &str, title: &str, unit: Unit, groups: &[&str], f: Value| {
        let path = dir.join(name);
        chart(&path, title, unit, groups, reports, f)?;
        files.push(path);
        Ok::<(), String>(())
    };
    draw(
        "startup.svg",
        "Start-up (median, min-max)",
        Unit::Seconds,
        &[
            "cold VM",
            "cold container",
            "warm container",
            "exec",
            "crun run",
            "crun exec",
        ],
        &|r, g| {
            let st = &r.startup;
            spread(
                [
                    st.cold_vm,
                    st.cold_container,
                    st.warm_container,
                    st.exec,
                    st.crun_run,
                    st.crun_exec,
                ][g],
            )
        },
    )?;
    draw(
        "memory.svg",
        "Memory of one idle machine, and per idle container",
        Unit::Mib,
        &[
            "QEMU RSS",
            "daemon RSS",
            "guest used",
            "agent RSS",
            "per container",
        ],
        &|r, g| {
            let m = &r.memory;
            point(
                [
                    m.qemu_rss,
                    m.daemon_rss,
                    m.guest_used,
                    m.agent_rss,
                    m.per_container,
                ][g],
            )
        },
    )?;
    draw(
        "density.svg",
        "Idle instances in the same memory budget",
        Unit::Instances,
        &["containers (one machine)", "VMs"],
        &|r, g| point([r.density.containers, r.density.vms][g].map(|v| v as f64)),
    )?;
    draw(
        "cpu.svg",
        "A fixed CPU loop",
        Unit::Seconds,
        &["container", "guest", "host"],
        &|r, g| spread([r.cpu.container, r.cpu.guest, r.cpu.host][g]),
    )?;
    draw(
        "io.svg",
        "tmpfs write and read",
        Unit::Seconds,
        &[
            "write: container",
            "write: guest",
            "write: host",
            "read: container",
            "read: guest",
            "read: host",
        ],
        &|r, g| {
            spread(
                [
                    r.io_write.container,
                    r.io_write.guest,
                    r.io_write.host,
                    r.io_read.container,
                    r.io_read.guest,
                    r.io_read.host,
                ][g],
            )
        },
    )?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(kernel: &str) -> KernelReport {
        let st = |m: f64| {
            Some(Stat {
                median: m,
                min: m * 0.9,
                max: m * 1.2,
                runs: 3,
            })
        };
        let mut r = KernelReport {
            kernel: kernel.into(),
            release: format!("{kernel}.0"),
            ..Default::default()
        };
        r.startup.cold_vm = st(1.2);
        r.startup.warm_container = st(0.1);
        r.memory.qemu_rss = Some(180.0);
        r.density.budget_mib = 512;
        r.density.containers = Some(300);
        r.density.vms = Some(2);
        r.cpu.guest = st(0.5);
        r.cpu.container = st(0.55);
        r.io_write.container = st(0.15);
        r.notes
            .push("crun in the guest: crun is not installed".into());
        r
    }

    #[test]
    fn the_table_has_a_column_per_kernel_with_medians_spreads_and_ratios() {
        let t = table(&[report("6.1"), report("cloud")]);
        assert!(
            t.lines().next().unwrap().contains("6.1") && t.contains("cloud"),
            "{t}"
        );
        assert!(t.contains("1.200s (1.080-1.440)"), "{t}");
        assert!(t.contains("0.08x"), "warm / cold VM: {t}");
        assert!(t.contains("1.10x"), "container / guest: {t}");
        assert!(
            t.contains("300 in 512 MiB") && t.contains("180.0 MiB"),
            "{t}"
        );
        assert!(t.contains("note (cloud): crun in the guest"), "{t}");
    }

    #[test]
    fn charts_and_json_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(dir.path(), &[report("6.1"), report("cloud")]).unwrap();
        assert_eq!(files.len(), 6);
        let svg = std::fs::read_to_string(dir.path().join("startup.svg")).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("cold VM") && svg.contains("cloud (cloud.0)"),
            "{svg}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json[1]["startup"]["cold_vm"]["median"], 1.2);
        // Counts are whole: 300 containers, not 300.00 (on the bars and the axis).
        let density = std::fs::read_to_string(dir.path().join("density.svg")).unwrap();
        assert!(
            density.contains(">\n300\n<") && density.contains(">\n2\n<"),
            "{density}"
        );
        assert!(!density.contains(".0\n<"), "{density}");
        // Seconds keep the axis's own steps: a 0.2 s axis reads 0.02, 0.04 ..., not 0.0 twice.
        let io = std::fs::read_to_string(dir.path().join("io.svg")).unwrap();
        assert!(io.contains(">\n0.02\n<"), "{io}");
    }

    #[test]
    fn values_are_written_for_their_unit() {
        assert_eq!(Unit::Instances.bar_label(2.0), "2");
        assert_eq!(Unit::Seconds.bar_label(0.0724), "0.072");
        assert_eq!(Unit::Mib.bar_label(36.56), "36.56");
        assert_eq!(Unit::Mib.bar_label(187.5), "188");
    }
}
