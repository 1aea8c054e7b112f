//! The benchmark's table: per case, the reference and cni-bridge side by side (ADD and DEL,
//! median and p90, in milliseconds), then their ratio (cni-bridge / reference), and the
//! target line. It only prints what was measured; it asserts nothing about time.

use std::fmt::Write as _;

use crate::stats::{ms, ratio, Summary};
use crate::variants::{Case, Impl, Measured};

/// The target: cni-bridge's ADD and DEL medians at most this fraction of the reference's.
pub const TARGET_RATIO: f64 = 1.0 / 3.0;

/// The ADD and DEL summaries of one variant.
#[derive(Debug, Clone, Copy)]
struct Row {
    add: Summary,
    del: Summary,
}

fn row(m: &Measured) -> Option<Row> {
    Some(Row { add: m.add.summary()?, del: m.del.summary()? })
}

fn find(results: &[Measured], case: Case, imp: Impl) -> Option<Row> {
    results.iter().find(|m| m.variant.case == case && m.variant.imp == imp).and_then(row)
}

/// Renders the table for `results` (any subset of the four variants, measured with `n` pods).
pub fn render(n: usize, results: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cni bench, N={n}, sequential, one node (ms)");
    let _ = writeln!(
        out,
        "{:<26} {:<11} {:>8} {:>8} {:>8} {:>8}",
        "case", "impl", "ADD p50", "ADD p90", "DEL p50", "DEL p90"
    );
    let mut verdicts = Vec::new();
    for case in Case::ALL {
        for imp in Impl::ALL {
            if let Some(r) = find(results, case, imp) {
                let _ = writeln!(
                    out,
                    "{:<26} {:<11} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    case.label(),
                    imp.label(),
                    ms(r.add.p50),
                    ms(r.add.p90),
                    ms(r.del.p50),
                    ms(r.del.p90)
                );
            }
        }
        if let (Some(re), Some(new)) = (find(results, case, Impl::Reference), find(results, case, Impl::CniBridge)) {
            let add = ratio(new.add.p50, re.add.p50);
            let del = ratio(new.del.p50, re.del.p50);
            let _ = writeln!(
                out,
                "{:<26} {:<11} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                "",
                "ratio",
                add,
                ratio(new.add.p90, re.add.p90),
                del,
                ratio(new.del.p90, re.del.p90)
            );
            let met = add <= TARGET_RATIO && del <= TARGET_RATIO;
            verdicts.push(format!(
                "{}: {} (ADD {add:.2}, DEL {del:.2})",
                case.label(),
                if met { "met" } else { "NOT met" }
            ));
        }
    }
    let _ = writeln!(out, "target: cni-bridge ADD and DEL p50 <= 1/3 of the reference's");
    for v in verdicts {
        let _ = writeln!(out, "  {v}");
    }
    out
}

/// One line per variant with the extremes, and the medians of the first and last tenth of
/// the calls (the node holds no pod at the first ADD and N at the last): outliers and
/// growth that the percentiles hide.
pub fn extremes(results: &[Measured]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:<11} {:>19} {:>23} {:>19} {:>23}",
        "", "", "ADD min..max", "first→last tenth p50", "DEL min..max", "first→last tenth p50"
    );
    for m in results {
        let (Some(r), Some(at), Some(dt)) = (row(m), m.add.trend(), m.del.trend()) else { continue };
        let _ = writeln!(
            out,
            "{:<26} {:<11} {:>19} {:>23} {:>19} {:>23}",
            m.variant.case.label(),
            m.variant.imp.label(),
            format!("{:.2}..{:.2}", ms(r.add.min), ms(r.add.max)),
            format!("{:.2}→{:.2}", ms(at.0), ms(at.1)),
            format!("{:.2}..{:.2}", ms(r.del.min), ms(r.del.max)),
            format!("{:.2}→{:.2}", ms(dt.0), ms(dt.1)),
        );
    }
    out
}
