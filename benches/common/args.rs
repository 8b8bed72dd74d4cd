//! The command line of `benches/steps.rs`: the workloads by name, and the timer's flags, which
//! override each workload's own timer (the peers' scripts take the same three).

/// How a workload is timed: `warmup` steps, then the median over `repeats` blocks of `steps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    pub warmup: usize,
    pub repeats: usize,
    pub steps: usize,
}

impl Timer {
    pub const fn new(warmup: usize, repeats: usize, steps: usize) -> Timer {
        Timer {
            warmup,
            repeats,
            steps,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// Workloads by name (`W1`, `L1`, ...); none named: all of them.
    pub chosen: Vec<String>,
    pub warmup: Option<usize>,
    pub repeats: Option<usize>,
    pub steps: Option<usize>,
    /// The length of W4's chain.
    pub stages: Option<usize>,
}

impl Args {
    /// Reads `--warmup N`, `--repeats N`, `--steps N`, `--stages N` and workload names; other
    /// flags are skipped (`cargo bench` passes `--bench`).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
        let mut out = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--warmup" => &mut out.warmup,
                "--repeats" => &mut out.repeats,
                "--steps" => &mut out.steps,
                "--stages" => &mut out.stages,
                flag if flag.starts_with('-') => continue,
                name => {
                    out.chosen.push(name.to_string());
                    continue;
                }
            };
            let value = args.next().ok_or_else(|| format!("{arg} needs a number"))?;
            let n: usize = value
                .parse()
                .map_err(|_| format!("{arg} {value}: not a number"))?;
            // A median needs a block, and a block a step.
            if n == 0 && arg != "--warmup" {
                return Err(format!("{arg} must be at least 1"));
            }
            *slot = Some(n);
        }
        Ok(out)
    }

    /// Whether the workload `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.chosen.is_empty() || self.chosen.iter().any(|c| c == name)
    }

    /// A workload's own timer, with what the command line gives in place of its fields.
    pub fn timer(&self, own: Timer) -> Timer {
        Timer {
            warmup: self.warmup.unwrap_or(own.warmup),
            repeats: self.repeats.unwrap_or(own.repeats),
            steps: self.steps.unwrap_or(own.steps),
        }
    }
}
