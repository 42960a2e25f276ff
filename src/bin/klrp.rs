//! `klrp`: inspect ONNX models, predict and explain their outputs with K-LRP from the command line.
//!
//! Run `klrp --help` for usage. The arguments are read by `clap`; the explanation options are the
//! library's [`klrp::spec::ExplainOptions`] (its `clap` group), read into a
//! [`klrp::spec::ExplainSpec`]. Errors print one line on stderr; the exit code is 2 for usage
//! errors, 1 for other failures.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand};
use klrp::Network;
use klrp::io::image::{self, Normalization, Preprocess};
use klrp::io::npy;
use klrp::io::onnx::{MAX_SAMPLE_ELEMENTS, load_onnx_file_with_max_elements};
use klrp::io::safetensors::SafeTensors;
use klrp::layers::{LayerKind, Tensor};
use klrp::rules::Bound;
use klrp::spec::{ExplainOptions, ExplainSpec, RelevanceArray, RuleOptions, Targets};
use klrp::viz::{Colormap, RgbImage, Scale};
use ndarray::{ArrayD, Axis, Ix2, Ix3};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

const TOP_HELP: &str = "\
Models (--model):
  M.onnx  a feed-forward ONNX graph (e.g. from torch.onnx.export); layer i is ONNX node i,
          every node counted (see `klrp info`)
  vgg16   torchvision's VGG-16 built in code; weights from --weights W.safetensors (torchvision
          names features.0.weight … classifier.6.bias), random (fixed seed) without

Default rules:
  real: LRP-ε with ε = 1e-6 on every layer; boolean, counting: LRP-0 (Composite::k_lrp);
  viterbi: max-abs shares (Composite::viterbi).

EXAMPLES:
  klrp info --model vgg16.onnx
  klrp predict --model vgg16.onnx --input cat.jpg --top 5 --labels imagenet_classes.txt
  klrp explain --model mlp.onnx --input x.npy --target 3 --out r.npy
  klrp explain --model vgg16.onnx --input cat.jpg --target predicted --composite epsilon-gamma-box \\
      --out r.npy --heatmap r.png --timing
  klrp explain --model cnn.onnx --input x.npy --target 1 --rule gamma=0.25 --first-rule zbox \\
      --low -3 --high 3 --out r.npy
  klrp explain --model cnn.onnx --input x.npy --target 1 --rule zero --init one --maxpool average \\
      --out r.npy
  klrp explain --model vgg16.onnx --input x.npy --target 281 --semiring counting --theta 0.05 \\
      --theta-at 47=0.3 --theta-abs --out counts.npy
  klrp completions bash > ~/.local/share/bash-completion/completions/klrp

Exit codes: 0 success, 1 failure (unreadable or unsupported model or input, …), 2 usage error.
Errors print one line on stderr.";

const EXPLAIN_HELP: &str = "\
Default rules:
  real: LRP-ε with ε = 1e-6 on every layer; boolean, counting: LRP-0 (Composite::k_lrp);
  viterbi: max-abs shares (Composite::viterbi).

Examples:
  klrp explain --model mlp.onnx --input x.npy --target 3 --out r.npy
  klrp explain --model vgg16.onnx --input cat.jpg --target predicted --composite epsilon-gamma-box \\
      --out r.npy --heatmap r.png --timing
  klrp explain --model vgg16.onnx --input x.npy --target 281 --semiring counting --theta 0.05 \\
      --theta-at 47=0.3 --theta-abs --out counts.npy";

const PREDICT_HELP: &str = "\
Output: for each sample, one line per class, best first:
  RANK<TAB>CLASS<TAB>PROBABILITY[<TAB>LABEL]
RANK counts from 1, CLASS is the output index, PROBABILITY the softmax of the outputs with 4
decimals, LABEL the class's line of --labels. When the input holds more than one sample, each
sample's lines follow a header line `sample N` (N from 0).

With --logits: one line per sample (line N is sample N, no header), the network's raw outputs in
C order, tab-separated, each in shortest round-trip form (1.0, -0.25, 1e-7): parsed as float32
they are the exact outputs, e.g. to check a port against PyTorch (np.loadtxt(\"logits.tsv\",
dtype=np.float32, ndmin=2)). Non-finite outputs are an error (exit 1), as for the class lines.

Example:
  klrp predict --model models/efficientnet_lite0.onnx --input photo.jpg \\
      --labels models/imagenet_classes.txt
  klrp predict --model model.onnx --input x.npy --logits > logits.tsv";

const PATHS_HELP: &str = "\
A path runs from one input element through one element of every node output on its way to the
target; its strength is the product of its Θ-converted shares (max-abs shares, Θ = clamp to
[0, 1]: the Viterbi relevance of an input is the strength of its strongest path).

Output (--out), a contract (docs/paths.md):
  --top K:    {\"target\": C, \"semiring\": \"viterbi\", \"paths\": [{\"strength\": S, \"steps\":
              [{\"node\": -1, \"index\": J, ...}, {\"node\": 0, \"index\": K, \"share\": D, ...}, ...]}]}
              the min(K, P) strongest of the P paths of strength > 0, strongest first (ties:
              lexicographic order of the steps); node = the layer index `klrp info` prints,
              index = the flat C-order index within one sample.
  --from J:   only paths from input element J, the strongest first; without --top, the
              strongest one (K = 1).
  --sample N: {\"target\": C, \"semiring\": \"counting\", \"theta\": T, \"relevant_paths\": P,
              \"seed\": S, \"sampled\": [{\"steps\": [...]}, ...]}: N paths drawn uniformly with
              replacement from the P relevant paths (every share d ≥ θ; LRP-0 shares).

Examples:
  klrp paths --model mlp.onnx --input x.npy --target 3 --top 10 --out paths.json
  klrp paths --model cnn.onnx --input digit.png --target predicted --top 5 --from 350 \\
      --out paths.json --figure paths.png
  klrp paths --model mlp.onnx --input x.npy --target 3 --sample 100 --theta 0.05 --seed 1 \\
      --out sampled.json";

/// klrp — semiring-generalized Layer-wise Relevance Propagation (K-LRP).
#[derive(Parser)]
#[command(name = "klrp", version, after_help = TOP_HELP, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// clap's default help heading (`Options`), for an option declared after a flattened group of
/// options with a heading of its own (`next_help_heading` would otherwise carry over to it).
const OPTIONS: Option<&str> = None;

#[derive(Subcommand)]
enum Command {
    /// Print every layer with its index (the index --theta-at takes), the ONNX node it came from,
    /// its output shape and its parameter count.
    Info(InfoArgs),
    /// Explain the model's output for a target class: write the input relevance.
    #[command(after_help = EXPLAIN_HELP)]
    Explain(Box<ExplainCli>),
    /// Print the most probable classes of each input sample (softmax of the outputs).
    #[command(after_help = PREDICT_HELP)]
    Predict(PredictArgs),
    /// The strongest paths (viterbi) from the input to a target class, or relevant paths drawn
    /// uniformly (counting): write them as JSON.
    #[command(after_help = PATHS_HELP)]
    Paths(Box<PathsCli>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
#[command(next_help_heading = "Model")]
struct ModelArgs {
    /// The model: an ONNX file, or `vgg16` (torchvision's VGG-16 built in code).
    #[arg(long, value_name = "M.onnx", allow_hyphen_values = true)]
    model: String,
    /// safetensors weights for --model vgg16 (torchvision names; random He-uniform weights with
    /// a fixed seed without).
    #[arg(long, value_name = "W", allow_hyphen_values = true)]
    weights: Option<String>,
    /// The largest tensor allowed, in elements: one sample's activation at ONNX import (default
    /// 268435456 = 2^28) and any activation or relevance of the whole batch (default 2147483648 =
    /// 2^31); raise it for very large inputs or batches, lower it to bound memory.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_elements: Option<String>,
}

#[derive(Args)]
#[command(next_help_heading = "Input")]
struct InputArgs {
    /// The input: an .npy of shape [N, ...] (a batch) or of one sample's shape, or a PNG/JPEG
    /// image (resized, center-cropped, normalised).
    #[arg(long, value_name = "X.npy|IMAGE", allow_hyphen_values = true)]
    input: String,
    /// Images: resize the shorter side to S first (default: the model's `klrp.resize` metadata,
    /// else ⌊256/224 · H⌋, i.e. 256 for 224 × 224 models).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    resize: Option<String>,
    /// Images: imagenet or none (default: the model's `klrp.mean`/`klrp.std` metadata if it
    /// declares preprocessing, else imagenet for 3 channels).
    #[arg(long, value_name = "N", value_parser = ["imagenet", "none"])]
    normalize: Option<String>,
    /// Images: refuse images of more than N pixels (default 67108864 = 2^26).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    max_pixels: Option<String>,
}

#[derive(Args)]
struct InfoArgs {
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// How many classes to print per sample, best first (all of them if fewer) [default: 5].
    #[arg(long, value_name = "K", allow_hyphen_values = true, help_heading = OPTIONS)]
    top: Option<String>,
    /// A text file of class names, one per line in class-index order (at least one line per
    /// class); adds a LABEL column.
    #[arg(long, value_name = "FILE", allow_hyphen_values = true, help_heading = OPTIONS)]
    labels: Option<String>,
    /// Print the network's raw outputs instead: one line per sample, its output values in
    /// C order, tab-separated, in shortest round-trip form (parsed as float32 they are exact).
    #[arg(long, help_heading = OPTIONS)]
    logits: bool,
}

#[derive(Args)]
struct ExplainCli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// The class to explain, for every sample; or C0,C1,… one per sample; or `predicted`: each
    /// sample's top-1 class.
    #[arg(long, value_name = "C", allow_hyphen_values = true, help_heading = OPTIONS)]
    target: String,
    #[command(flatten)]
    output: ExplainOutput,
    #[command(flatten)]
    options: ExplainOptions,
}

/// What `explain` writes.
#[derive(Args)]
#[command(next_help_heading = "Output")]
struct ExplainOutput {
    /// Where to write the input relevance (same shape as the input; float32 for real and
    /// viterbi, bool for boolean, uint64 for counting).
    #[arg(long, value_name = "R.npy", allow_hyphen_values = true)]
    out: String,
    /// Also write a heatmap (channels summed; blue-white-red for real, black-red-yellow-white
    /// for the others, counts on a log scale); a batch writes R_0.png, R_1.png, …
    #[arg(long, value_name = "R.png", allow_hyphen_values = true)]
    heatmap: Option<String>,
    /// Print `timing: load X ms, forward Y ms, relevance Z ms` to stderr.
    #[arg(long)]
    timing: bool,
}

#[derive(Args)]
struct PathsCli {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    input: InputArgs,
    /// The class the paths lead to, or `predicted` (the input holds one sample).
    #[arg(long, value_name = "C", allow_hyphen_values = true, help_heading = OPTIONS)]
    target: String,
    #[command(flatten)]
    select: PathsSelection,
    #[command(flatten)]
    output: PathsOutput,
    #[command(flatten)]
    rules: RuleOptions,
}

/// Which paths `paths` lists or draws.
#[derive(Args)]
#[command(next_help_heading = "Paths")]
struct PathsSelection {
    /// List the K strongest paths (viterbi), strongest first [default with --from: 1].
    #[arg(long, value_name = "K", allow_hyphen_values = true)]
    top: Option<String>,
    /// Only paths starting at input element INDEX (flat C-order index within one sample): the
    /// first listed is the strongest path from it.
    #[arg(long = "from", value_name = "INDEX", allow_hyphen_values = true)]
    from_index: Option<String>,
    /// Draw N relevant paths uniformly at random, with replacement (counting: every linear and
    /// pooling share d ≥ θ, see --theta).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    sample: Option<String>,
    /// The seed of --sample [default: 0]: the same seed draws the same paths.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    seed: Option<String>,
}

/// What `paths` writes.
#[derive(Args)]
#[command(next_help_heading = "Output")]
struct PathsOutput {
    /// Where to write the paths (JSON).
    #[arg(long, value_name = "paths.json", allow_hyphen_values = true)]
    out: String,
    /// Also draw the first path on the input image: its receptive field at every layer as
    /// nested boxes, the input pixel marked, a legend naming the layers (needs an image-shaped
    /// input, [C, H, W]).
    #[arg(long, value_name = "paths.png", allow_hyphen_values = true)]
    figure: Option<String>,
    /// Also write the circuit: the union of the paths, per layer the elements and channels on
    /// them with how many paths use each (JSON).
    #[arg(long, value_name = "circuit.json", allow_hyphen_values = true)]
    circuit: Option<String>,
}

enum CliError {
    Usage(String),
    Failure(String),
}

impl From<klrp::Error> for CliError {
    fn from(e: klrp::Error) -> Self {
        CliError::Failure(e.to_string())
    }
}

type CliResult<T> = Result<T, CliError>;

fn usage<T>(msg: impl Into<String>) -> CliResult<T> {
    Err(CliError::Usage(msg.into()))
}

/// A library error as a usage error (the message without "invalid argument: ").
fn usage_error(e: klrp::Error) -> CliError {
    match e {
        klrp::Error::InvalidArgument(m) => CliError::Usage(m),
        other => CliError::Usage(other.to_string()),
    }
}

fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        eprintln!(
            "error: internal error (a bug in klrp, please report it): {}",
            one_line(&payload)
        );
    }));
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let outcome = std::panic::catch_unwind(|| run(&argv));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(CliError::Usage(m))) => {
            eprintln!("error: {} (see `klrp --help`)", one_line(&m));
            ExitCode::from(2)
        }
        Ok(Err(CliError::Failure(m))) => {
            eprintln!("error: {}", one_line(&m));
            ExitCode::from(1)
        }
        Err(_) => ExitCode::from(1),
    }
}

/// Writes to stdout; a closed pipe (`klrp info | head`) is not an error.
fn out(text: &str) -> CliResult<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Failure(format!("writing to stdout: {e}"))),
    }
}

fn run(argv: &[std::ffi::OsString]) -> CliResult<()> {
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                return out(&e.render().to_string());
            }
            _ => return Err(CliError::Usage(clap_message(&e, argv))),
        },
    };
    match cli.command {
        None => usage(
            "no command given: use `klrp info`, `klrp explain`, `klrp predict` or `klrp paths`",
        ),
        Some(Command::Info(a)) => info(&a.model),
        Some(Command::Explain(a)) => explain(&a),
        Some(Command::Predict(a)) => predict(&a),
        Some(Command::Paths(a)) => paths(&a),
        Some(Command::Completions { shell }) => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "klrp", &mut buf);
            out(&String::from_utf8_lossy(&buf))
        }
    }
}

/// A context value of a clap error as text.
fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => v.first().map(|s| s.to_string()),
        _ => None,
    }
}

/// `--model <M.onnx>` → `--model`; a positional `<SHELL>` → `SHELL`.
fn flag_name(arg: &str) -> &str {
    let name = arg.split([' ', '=']).next().unwrap_or(arg);
    name.trim_start_matches('<').trim_end_matches('>')
}

/// "a, b or c".
fn alternatives(v: &[String]) -> String {
    match v {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A clap parse error as one line, in klrp's wording (kept from the hand-written parser).
fn clap_message(e: &clap::Error, argv: &[std::ffi::OsString]) -> String {
    let arg = context(e, ContextKind::InvalidArg).unwrap_or_default();
    let flag = flag_name(&arg).to_string();
    let subcommand = argv
        .get(1)
        .and_then(|a| a.to_str())
        .filter(|a| matches!(*a, "info" | "explain" | "predict" | "completions"));
    let mut msg = match e.kind() {
        ErrorKind::UnknownArgument => {
            let elsewhere = subcommand.is_some()
                && Cli::command()
                    .get_subcommands()
                    .flat_map(|s| s.get_arguments())
                    .any(|a| a.get_long().is_some_and(|l| format!("--{l}") == flag));
            match subcommand {
                Some(cmd) if elsewhere => format!("{flag} does not apply to `klrp {cmd}`"),
                _ if arg.starts_with('-') => format!("unknown option '{flag}'"),
                _ => format!("unexpected argument '{arg}'"),
            }
        }
        ErrorKind::InvalidSubcommand => {
            let sub = context(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            format!(
                "unknown command '{sub}': use `klrp info`, `klrp explain`, `klrp predict` or \
                 `klrp completions`"
            )
        }
        ErrorKind::ArgumentConflict => {
            let prior = context(e, ContextKind::PriorArg).unwrap_or_default();
            if flag_name(&prior) == flag || prior.is_empty() {
                format!("{flag} given twice")
            } else {
                format!("{flag} cannot be used with {}", flag_name(&prior))
            }
        }
        ErrorKind::InvalidValue => {
            let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
            if value.is_empty() {
                format!("{flag} needs a value")
            } else {
                let valid = match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(v)) => v.clone(),
                    _ => Vec::new(),
                };
                format!("{flag}: '{value}' is not {}", alternatives(&valid))
            }
        }
        ErrorKind::TooManyValues | ErrorKind::NoEquals => format!("{flag} takes no value"),
        ErrorKind::MissingRequiredArgument => {
            let missing: Vec<String> = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::Strings(v)) => {
                    v.iter().map(|a| flag_name(a).to_string()).collect()
                }
                _ => vec![flag.clone()],
            };
            if missing.len() == 1 {
                format!("{} is required", missing[0])
            } else {
                format!("{} are required", missing.join(" and "))
            }
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_string(),
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            first.trim_start_matches("error: ").to_string()
        }
    };
    if msg.contains("does not apply") {
        return msg;
    }
    let suggestion = context(e, ContextKind::SuggestedArg)
        .or_else(|| context(e, ContextKind::SuggestedValue))
        .or_else(|| context(e, ContextKind::SuggestedSubcommand));
    if let Some(s) = suggestion {
        msg.push_str(&format!("; did you mean '{s}'?"));
    }
    msg
}

fn parse_usize(flag: &str, s: &str) -> CliResult<usize> {
    s.trim()
        .parse::<usize>()
        .or_else(|_| usage(format!("{flag}: '{s}' is not a non-negative integer")))
}

/// A positive limit or count (`--max-pixels`, `--max-elements`, `--top`).
fn parse_limit(flag: &str, s: &str) -> CliResult<u64> {
    match s.trim().parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => usage(format!("{flag}: '{s}' is not a positive integer")),
    }
}

/// A loaded model and, per layer, where it came from.
struct Loaded {
    network: Network,
    origin: Vec<(String, Option<String>)>,
    description: String,
    input_label: String,
    /// The ONNX model's `metadata_props` (empty for built-in models).
    metadata: std::collections::BTreeMap<String, String>,
}

fn load_model(args: &ModelArgs) -> CliResult<Loaded> {
    let max_elements = match &args.max_elements {
        Some(s) => Some(parse_limit("--max-elements", s)?),
        None => None,
    };
    let mut loaded = load_model_with(args, &args.model, max_elements)?;
    if let Some(n) = max_elements {
        loaded.network = loaded.network.with_max_elements(n)?;
    }
    Ok(loaded)
}

fn load_model_with(args: &ModelArgs, model: &str, max_elements: Option<u64>) -> CliResult<Loaded> {
    if model == "vgg16" {
        let weights = match args.weights.as_deref() {
            Some(w) => Some(SafeTensors::read_file(w)?),
            None => None,
        };
        let network = klrp::models::vgg16(weights.as_ref())?;
        let origin = (0..network.layers().len())
            .map(|i| (klrp::models::vgg16_module_name(i).unwrap_or_default(), None))
            .collect();
        let description = match &args.weights {
            Some(w) => format!("torchvision VGG-16, weights from {w}"),
            None => format!(
                "torchvision VGG-16, random He-uniform weights (seed {:#x})",
                klrp::models::VGG16_SEED
            ),
        };
        return Ok(Loaded {
            network,
            origin,
            description,
            input_label: "built-in".into(),
            metadata: Default::default(),
        });
    }
    if args.weights.is_some() {
        return usage("--weights applies only to --model vgg16");
    }
    let m = load_onnx_file_with_max_elements(model, max_elements.unwrap_or(MAX_SAMPLE_ELEMENTS))?;
    let origin = m
        .nodes()
        .iter()
        .map(|n| {
            let name = if n.name.is_empty() {
                n.op_type.clone()
            } else {
                format!("{} ({})", n.name, n.op_type)
            };
            (name, n.note.clone())
        })
        .collect();
    let description = format!(
        "{model} (ONNX{}{})",
        m.opset().map(|v| format!(" opset {v}")).unwrap_or_default(),
        if m.producer().is_empty() {
            String::new()
        } else {
            format!(", from {}", m.producer())
        }
    );
    let input_label = format!(
        "'{}'{}",
        m.input_name(),
        m.declared_batch()
            .map(|b| format!(", declared batch {b}, any batch accepted"))
            .unwrap_or_default()
    );
    let metadata = m.metadata().clone();
    Ok(Loaded {
        network: m.into_network(),
        origin,
        description,
        input_label,
        metadata,
    })
}

fn shape_str(s: &[usize]) -> String {
    format!(
        "[{}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn batch_shape_str(s: &[usize]) -> String {
    format!(
        "[N, {}]",
        s.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A node's inputs for `klrp info`: `input` for the network input, else node indices, joined by
/// commas (`3,7` for a residual sum of nodes 3 and 7).
fn inputs_str(inputs: &[klrp::Source]) -> String {
    inputs
        .iter()
        .map(|s| match s {
            klrp::Source::Input => "input".to_string(),
            klrp::Source::Node(j) => j.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn info(args: &ModelArgs) -> CliResult<()> {
    let m = load_model(args)?;
    let net = &m.network;
    let header = [
        "layer",
        "inputs",
        "from",
        "klrp layer",
        "output shape",
        "params",
    ];
    let mut rows: Vec<[String; 6]> = Vec::new();
    for (i, layer) in net.layers().iter().enumerate() {
        let (origin, note) = &m.origin[i];
        let mut name = layer.name();
        if let Some(n) = note {
            name = format!("{name} — {n}");
        }
        if layer.kind() == LayerKind::Normalization {
            name = match net.fusion_target(i) {
                Some(p) => format!("{name} — fused into layer {p} before propagation"),
                None => format!("{name} — standalone: a per-channel linear map y = s·x + t"),
            };
        }
        rows.push([
            i.to_string(),
            inputs_str(net.inputs_of(i).unwrap_or(&[])),
            origin.clone(),
            name,
            shape_str(net.layer_output_shape(i).unwrap_or(&[])),
            layer.param_count().to_string(),
        ]);
    }
    let width = |k: usize| {
        rows.iter()
            .map(|r| r[k].chars().count())
            .chain([header[k].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let w: Vec<usize> = (0..6).map(width).collect();
    let mut text = format!(
        "model: {}\ninput: [N, {}] {}\n",
        m.description,
        net.input_shape()
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        m.input_label
    );
    let line = |r: &[String]| {
        let pad = |s: &str, n: usize| format!("{s}{}", " ".repeat(n - s.chars().count()));
        format!(
            "{:>w0$}  {}  {}  {}  {}  {:>w5$}\n",
            r[0],
            pad(&r[1], w[1]),
            pad(&r[2], w[2]),
            pad(&r[3], w[3]),
            pad(&r[4], w[4]),
            r[5],
            w0 = w[0],
            w5 = w[5]
        )
    };
    let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    text.push_str(&line(&h));
    for r in &rows {
        text.push_str(&line(r));
    }
    text.push_str(&format!(
        "{} layers, {} parameters\n",
        net.layers().len(),
        net.param_count()
    ));
    text.push_str(&metadata_section(&m.metadata, net.input_shape()));
    out(&text)
}

/// `klrp info`'s lines after the layer table when the model has `metadata_props`: every
/// property, then, for an image-shaped input, the preprocessing an image gets (or why the
/// metadata cannot be used). Empty without metadata.
///
/// ```text
/// metadata (ONNX metadata_props, 4 entries):
///   klrp.crop = 224
///   …
/// image preprocessing (from the metadata): resize 256, center crop 224×224, normalize mean [0.49803922, …] std […]
/// ```
fn metadata_section(
    metadata: &std::collections::BTreeMap<String, String>,
    input: &[usize],
) -> String {
    if metadata.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "metadata (ONNX metadata_props, {} {}):\n",
        metadata.len(),
        if metadata.len() == 1 {
            "entry"
        } else {
            "entries"
        }
    );
    for (key, value) in metadata {
        text.push_str(&format!("  {key} = {value}\n"));
    }
    let &[c, h, w] = input else {
        return text;
    };
    let declared = Preprocess::from_metadata(metadata, c, h, w);
    let line = match declared {
        Ok(None) => return text,
        Ok(Some(p)) => {
            let list = |v: &[f32]| {
                let items: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                format!("[{}]", items.join(", "))
            };
            let mut parts = vec![match p.resize {
                Some(s) => format!("resize {s}"),
                None => "no resize".to_string(),
            }];
            if let Some((ch, cw)) = p.crop {
                parts.push(format!("center crop {ch}×{cw}"));
            }
            parts.push(match &p.normalize {
                Some(n) => format!("normalize mean {} std {}", list(&n.mean), list(&n.std)),
                None => "no normalization".to_string(),
            });
            parts.join(", ")
        }
        Err(e) => format!("unusable ({e})"),
    };
    text.push_str(&format!(
        "image preprocessing (from the metadata): {line}\n"
    ));
    text
}

/// The input tensor and how it was made.
struct Input {
    x: Tensor,
    had_batch: bool,
    /// The per-channel pixel range after preprocessing, for images.
    pixel_range: Option<(Vec<f32>, Vec<f32>)>,
}

/// Reads the input; image preprocessing follows the model's metadata (`klrp.mean`, `klrp.std`,
/// `klrp.resize`, `klrp.crop`) unless flags override it.
fn load_input(args: &InputArgs, loaded: &Loaded) -> CliResult<Input> {
    let net = &loaded.network;
    let path = args.input.as_str();
    let bytes = std::fs::read(path).map_err(|e| klrp::Error::Io {
        path: path.into(),
        source: e,
    })?;
    let sample = net.input_shape();
    let is_npy = bytes.starts_with(b"\x93NUMPY");
    if is_npy {
        if args.resize.is_some() || args.normalize.is_some() {
            return usage("--resize and --normalize apply to image inputs only");
        }
        if args.max_pixels.is_some() {
            return usage("--max-pixels applies to image inputs only");
        }
        let arr = npy::parse_npy(&bytes).map_err(|e| match e {
            klrp::Error::Malformed { format, reason } => klrp::Error::Malformed {
                format,
                reason: format!("{path}: {reason}"),
            },
            other => other,
        })?;
        let x = arr.to_f32()?;
        let (x, had_batch) = if x.shape() == sample {
            (x.insert_axis(Axis(0)), false)
        } else if x.ndim() == sample.len() + 1 && &x.shape()[1..] == sample && x.shape()[0] > 0 {
            (x, true)
        } else {
            return Err(CliError::Failure(format!(
                "input {path} has shape {}; the model takes {} (a batch) or {} (one sample)",
                shape_str(x.shape()),
                batch_shape_str(sample),
                shape_str(sample)
            )));
        };
        return Ok(Input {
            x,
            had_batch,
            pixel_range: None,
        });
    }
    let is_image = bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xff, 0xd8]);
    if !is_image {
        return Err(CliError::Failure(format!(
            "{path} is not an .npy, PNG or JPEG file (unrecognised signature)"
        )));
    }
    let &[c, h, w] = sample else {
        return Err(CliError::Failure(format!(
            "{path} is an image, but the model's input {} is not an image ([C, H, W]); give the \
             input as .npy",
            shape_str(sample)
        )));
    };
    if c != 1 && c != 3 {
        return Err(CliError::Failure(format!(
            "the model takes {c}-channel images; only 1 or 3 channels can come from an image \
             file (give the input as .npy)"
        )));
    }
    let mut pre = Preprocess::for_model(&loaded.metadata, c, h, w)?;
    match args.normalize.as_deref() {
        None => {}
        Some("imagenet") if c == 3 => pre.normalize = Some(Normalization::imagenet()),
        Some("imagenet") => return usage("--normalize imagenet needs a 3-channel model"),
        Some("none") => pre.normalize = None,
        Some(other) => return usage(format!("--normalize: '{other}' is not imagenet or none")),
    }
    let normalize = pre.normalize.clone();
    if let Some(r) = &args.resize {
        pre.resize = Some(parse_usize("--resize", r)?);
    }
    let max_pixels = match &args.max_pixels {
        Some(s) => parse_limit("--max-pixels", s)?,
        None => image::MAX_PIXELS,
    };
    let img = image::decode_image_with_max_pixels(&bytes, max_pixels).map_err(|e| match e {
        klrp::Error::Malformed { format, reason } => klrp::Error::Malformed {
            format,
            reason: format!("{path}: {reason}"),
        },
        other => other,
    })?;
    let x = image::to_tensor(&img, &pre)?;
    let range = match &normalize {
        Some(n) => (
            (0..c).map(|k| -n.mean[k] / n.std[k]).collect(),
            (0..c).map(|k| (1.0 - n.mean[k]) / n.std[k]).collect(),
        ),
        None => (vec![0.0; c], vec![1.0; c]),
    };
    Ok(Input {
        x,
        had_batch: false,
        pixel_range: Some(range),
    })
}

/// Drops the batch axis again if the input had none.
fn strip<T: Clone>(a: ArrayD<T>, had_batch: bool) -> ArrayD<T> {
    if had_batch {
        a
    } else {
        a.index_axis_move(Axis(0), 0)
    }
}

fn write<T: npy::NpyElement>(path: &str, a: ArrayD<T>, had_batch: bool) -> CliResult<()> {
    Ok(npy::write_npy_file(path, &strip(a, had_batch))?)
}

/// `--target`'s classes.
fn parse_target(s: &str) -> CliResult<Targets> {
    s.parse()
        .map_err(|e: klrp::Error| usage_error(e).prefixed("--target"))
}

/// The canonized network (batch norms fused, as relevance is propagated) and the input.
fn load_canonized(model: &ModelArgs, input: &InputArgs) -> CliResult<(Network, Input)> {
    let loaded = load_model(model)?;
    let input = load_input(input, &loaded)?;
    Ok((loaded.network.canonize()?, input))
}

/// A failure unless the model's input is an image of `ranks` axes (3: `[C, H, W]`, 2: `[H, W]`),
/// for `flag file`, which draws on it.
fn image_shaped(net: &Network, flag: &str, file: &str, ranks: &[usize]) -> CliResult<()> {
    let s = net.input_shape();
    if ranks.contains(&s.len()) {
        return Ok(());
    }
    let shapes: Vec<&str> = ranks
        .iter()
        .map(|&r| if r == 3 { "[C, H, W]" } else { "[H, W]" })
        .collect();
    Err(CliError::Failure(format!(
        "{flag} {file} needs an image-shaped input ({}); the model takes {}",
        shapes.join(" or "),
        shape_str(s)
    )))
}

/// Fits `spec` to the model and input: every `--theta-at` layer exists; box bounds from the
/// flags, else each channel's pixel range for images, else ±3 (the spec's default).
fn fit(spec: &mut ExplainSpec, net: &Network, input: &Input) -> CliResult<()> {
    spec.check_layers(net.layers().len()).map_err(usage_error)?;
    if spec.uses_bounds()
        && spec.bounds.is_none()
        && let Some((lo, hi)) = &input.pixel_range
    {
        spec.bounds = Some((
            Bound::PerChannel(lo.as_slice().into()),
            Bound::PerChannel(hi.as_slice().into()),
        ));
    }
    Ok(())
}

fn explain(a: &ExplainCli) -> CliResult<()> {
    // Everything that can be checked without the model first.
    let targets = parse_target(&a.target)?;
    let mut spec = ExplainSpec::from_options(&a.options).map_err(usage_error)?;

    let t_load = Instant::now();
    let (net, input) = load_canonized(&a.model, &a.input)?;
    if let Some(h) = &a.output.heatmap {
        image_shaped(&net, "--heatmap", h, &[3, 2])?;
    }
    fit(&mut spec, &net, &input)?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;

    let e = spec.run(&net, &input.x, &targets, false)?;
    if spec.theta_auto.is_some() {
        let chosen: Vec<String> = net
            .layers()
            .iter()
            .zip(&e.thetas)
            .enumerate()
            .filter(|(_, (layer, _))| layer.kind().is_linear())
            .map(|(i, (_, t))| format!("{i}={t}"))
            .collect();
        eprintln!("theta-auto: {}", chosen.join(" "));
    }
    if targets == Targets::Predicted {
        let classes: Vec<String> = e.targets.iter().map(|t| t.to_string()).collect();
        eprintln!("predicted: {}", classes.join(","));
    }
    if let Some(line) = near_kinks_warning(&net, &e.near_kinks) {
        eprintln!("{line}");
    }
    let pictures = match &a.output.heatmap {
        Some(_) => heatmaps(&e.input)?,
        None => Vec::new(),
    };
    let out_path = a.output.out.as_str();
    match e.input {
        RelevanceArray::Real(r) => {
            if e.overflowed > 0 {
                eprintln!(
                    "warning: {} relevance values are not finite (f32 overflow)",
                    e.overflowed
                );
            }
            write(out_path, r, input.had_batch)?;
        }
        RelevanceArray::Viterbi(r) => write(out_path, r, input.had_batch)?,
        RelevanceArray::Boolean(r) => write(out_path, r, input.had_batch)?,
        RelevanceArray::Counting(r) => {
            if e.overflowed > 0 {
                eprintln!(
                    "warning: {} of {} path counts saturated at 2^64 - 1 (u64::MAX in the output \
                     means \"2^64 - 1 or more\"); use the library's FloatCounting or LogCounting \
                     for exact magnitudes",
                    e.overflowed,
                    r.len()
                );
            }
            write(out_path, r, input.had_batch)?;
        }
    }
    if let Some(h) = &a.output.heatmap {
        save_heatmaps(Path::new(h), &pictures)?;
    }
    if a.output.timing {
        eprintln!(
            "timing: load {load_ms:.1} ms, forward {:.1} ms, relevance {:.1} ms",
            e.forward.as_secs_f64() * 1e3,
            e.relevance.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The one-line warning `klrp explain` prints when units lie within float32 rounding of a kink,
/// naming the layer with the most of them.
fn near_kinks_warning(net: &Network, near: &klrp::NearKinks) -> Option<String> {
    let (worst, n) = near.worst()?;
    let name = net
        .layers()
        .get(worst)
        .map(|l| l.name())
        .unwrap_or_default();
    let what = "within float32 rounding of a kink (a max-pooling near-tie or a ReLU input at 0)";
    let tail = "relevance in their receptive fields depends on rounding";
    Some(match near.layers().len() {
        1 if n == 1 => format!(
            "warning: 1 unit of layer {worst} ({name}) is {what}: relevance in its receptive \
             field depends on rounding"
        ),
        1 => format!("warning: {n} units of layer {worst} ({name}) are {what}: {tail}"),
        k => format!(
            "warning: {} units in {k} layers are {what}, most in layer {worst} ({name}: {n}): {tail}",
            near.total()
        ),
    })
}

/// An optional flag's value, parsed by `parse` (which names `flag` in its errors).
fn optional<T>(
    flag: &str,
    value: &Option<String>,
    parse: fn(&str, &str) -> CliResult<T>,
) -> CliResult<Option<T>> {
    value.as_deref().map(|v| parse(flag, v)).transpose()
}

/// A count flag (at least 1: `parse_limit` refuses 0).
fn parse_count(flag: &str, s: &str) -> CliResult<usize> {
    Ok(usize::try_from(parse_limit(flag, s)?).unwrap_or(usize::MAX))
}

fn paths(a: &PathsCli) -> CliResult<()> {
    let target = parse_target(&a.target)?;
    if let Targets::PerSample(_) = target {
        return usage("--target: paths take one class (or `predicted`)");
    }
    let sampling = a.select.sample.is_some();
    if sampling && (a.select.top.is_some() || a.select.from_index.is_some()) {
        return usage(
            "--sample draws relevant paths (counting); --top and --from list the strongest paths \
             (viterbi): give one or the other",
        );
    }
    if !sampling {
        // `--from J` alone lists the strongest path from J (`--top` defaults to 1 there).
        if a.select.top.is_none() && a.select.from_index.is_none() {
            return usage(
                "give --top K (the strongest paths) or --sample N --theta T (relevant paths)",
            );
        }
        if a.rules.theta.is_some() || !a.rules.theta_at.is_empty() || a.rules.theta_abs {
            return usage(
                "--theta, --theta-at and --theta-abs apply to --sample (counting); the strongest \
                 paths use Θ = clamp to [0, 1]",
            );
        }
        if a.select.seed.is_some() {
            return usage("--seed applies to --sample");
        }
    }
    let sel = &a.select;
    let top = optional("--top", &sel.top, parse_count)?;
    let count = optional("--sample", &sel.sample, parse_count)?;
    let from = optional("--from", &sel.from_index, parse_usize)?;
    let seed = match &a.select.seed {
        Some(s) => match s.trim().parse::<u64>() {
            Ok(v) => v,
            Err(_) => return usage(format!("--seed: '{s}' is not a non-negative integer")),
        },
        None => 0,
    };
    let mut spec = ExplainSpec::from_options(&ExplainOptions {
        semiring: Some(if sampling { "counting" } else { "viterbi" }.into()),
        rules: a.rules.clone(),
        ..ExplainOptions::default()
    })
    .map_err(usage_error)?;
    let (net, input) = load_canonized(&a.model, &a.input)?;
    if input.x.shape()[0] != 1 {
        return Err(CliError::Failure(format!(
            "paths explain one sample; {} holds {} (give one sample)",
            a.input.input,
            input.x.shape()[0]
        )));
    }
    if let Some(f) = &a.output.figure {
        image_shaped(&net, "--figure", f, &[3])?;
    }
    fit(&mut spec, &net, &input)?;
    let composite = spec.composite().map_err(usage_error)?;
    // The picture the figure is drawn on: an image input with its normalisation undone, else
    // each channel stretched to its range.
    let picture = match &a.output.figure {
        Some(_) => Some(klrp::paths::input_image(
            &input.x,
            input
                .pixel_range
                .as_ref()
                .map(|(lo, hi)| (lo.as_slice(), hi.as_slice())),
        )?),
        None => None,
    };
    let picture = picture.as_ref();
    let (json, found, figure) = if let Some(n) = count {
        let theta = spec.theta.unwrap_or(klrp::spec::DEFAULT_THETA);
        if spec.theta_abs {
            let mut p = klrp::PerLayer::new(klrp::AbsThreshold::new(theta)?);
            for &(i, t) in &spec.theta_at {
                p.set(i, klrp::AbsThreshold::new(t)?);
            }
            let ex = klrp::Explainer::<_, klrp::AbsThreshold>::new(composite, p);
            sample_paths(&net, &input.x, target, &ex, (n, seed, theta), picture)?
        } else {
            let mut p = klrp::PerLayer::new(klrp::Threshold::new(theta)?);
            for &(i, t) in &spec.theta_at {
                p.set(i, klrp::Threshold::new(t)?);
            }
            let ex = klrp::Explainer::<_, klrp::Threshold>::new(composite, p);
            sample_paths(&net, &input.x, target, &ex, (n, seed, theta), picture)?
        }
    } else {
        let ex = klrp::Explainer::new(composite, klrp::Clamp01);
        let g = klrp::paths::RelevanceGraph::new(&net, &input.x, target, &ex)?;
        let k = top.unwrap_or(1);
        let found = match from {
            Some(j) => g.strongest_from(j, k).map_err(|e| match e {
                klrp::Error::InvalidArgument(m) => CliError::Usage(format!("--from: {m}")),
                other => other.into(),
            })?,
            None => g.strongest(k)?,
        };
        if found.is_empty() {
            eprintln!(
                "note: no path of strength > 0 leads to target {}{} (every path has a zero \
                 share); writing \"paths\": []",
                g.target(),
                from.map(|j| format!(" from input element {j}"))
                    .unwrap_or_default()
            );
        }
        let figure = draw_first(&g, &found, picture)?;
        (klrp::paths::paths_json(g.target(), &found), found, figure)
    };
    std::fs::write(&a.output.out, json).map_err(|e| klrp::Error::Io {
        path: a.output.out.clone(),
        source: e,
    })?;
    if let Some(c) = &a.output.circuit {
        let circuit = klrp::paths::Circuit::from_paths(&found);
        std::fs::write(c, circuit.to_json()).map_err(|e| klrp::Error::Io {
            path: c.clone(),
            source: e,
        })?;
    }
    if let Some(f) = &a.output.figure {
        match figure {
            Some(fig) => klrp::viz::save_png(f, &fig)?,
            None => eprintln!("note: no path to draw; {f} not written"),
        }
    }
    Ok(())
}

/// The receptive-field figure of the first path on `picture` (`None` without a picture or a
/// path).
fn draw_first<K: klrp::semiring::Semiring, T: klrp::Conversion<K>>(
    g: &klrp::paths::RelevanceGraph<'_, K, T>,
    found: &[klrp::paths::Path],
    picture: Option<&RgbImage>,
) -> CliResult<Option<RgbImage>> {
    match (picture, found.first()) {
        (Some(p), Some(path)) => Ok(Some(g.receptive_field_figure(path, p)?)),
        _ => Ok(None),
    }
}

/// Samples `n` relevant paths (`(n, seed, θ)`), drawing the first on `picture` if given.
fn sample_paths<T: klrp::Conversion<klrp::semiring::Counting>>(
    net: &Network,
    x: &Tensor,
    target: klrp::Targets,
    ex: &klrp::Explainer<klrp::semiring::Counting, T>,
    (n, seed, theta): (usize, u64, f32),
    picture: Option<&RgbImage>,
) -> CliResult<PathsFound> {
    let g = klrp::paths::RelevanceGraph::new(net, x, target, ex)?;
    let total = g.count()?;
    let found = g.sample(n, seed)?;
    let json = klrp::paths::sample_json(g.target(), theta, total, seed, &found);
    let figure = draw_first(&g, &found, picture)?;
    Ok((json, found, figure))
}

/// The JSON, the paths and the figure.
type PathsFound = (String, Vec<klrp::paths::Path>, Option<RgbImage>);

impl CliError {
    /// Prefixes `flag: ` to the message.
    fn prefixed(self, flag: &str) -> CliError {
        match self {
            CliError::Usage(m) => CliError::Usage(format!("{flag}: {m}")),
            CliError::Failure(m) => CliError::Failure(format!("{flag}: {m}")),
        }
    }
}

fn predict(a: &PredictArgs) -> CliResult<()> {
    if a.logits {
        return logits(a);
    }
    let top = optional("--top", &a.top, parse_count)?.unwrap_or(klrp::spec::DEFAULT_TOP);
    let loaded = load_model(&a.model)?;
    let input = load_input(&a.input, &loaded)?;
    let net = loaded.network;
    let classes: usize = net.output_shape().iter().product();
    let labels = match &a.labels {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| klrp::Error::Io {
                path: path.clone(),
                source: e,
            })?;
            let names: Vec<String> = text
                .lines()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
            if names.len() < classes {
                return Err(CliError::Failure(format!(
                    "--labels {path} has {} lines; the model has {classes} classes (one name per \
                     line, in class-index order)",
                    names.len()
                )));
            }
            Some(names)
        }
    };
    let predictions = klrp::spec::predict(&net, &input.x, top)?;
    let mut text = String::new();
    let many = predictions.len() > 1;
    for (s, ranked) in predictions.iter().enumerate() {
        if many {
            text.push_str(&format!("sample {s}\n"));
        }
        for (rank, c) in ranked.iter().enumerate() {
            text.push_str(&format!("{}\t{}\t{:.4}", rank + 1, c.class, c.probability));
            if let Some(names) = &labels {
                text.push('\t');
                text.push_str(&names[c.class]);
            }
            text.push('\n');
        }
    }
    out(&text)
}

/// `predict --logits`: line `s` holds sample `s`'s outputs (flattened in C order), tab-separated,
/// each in Rust's shortest round-trip form (`{:?}`: `1.0`, `-0.25`, `1e-7`; the forward pass refuses non-finite values), so
/// parsing a value as float32 gives back exactly the output.
fn logits(a: &PredictArgs) -> CliResult<()> {
    if a.top.is_some() || a.labels.is_some() {
        return usage(
            "--logits prints every raw output; --top and --labels apply to the class lines",
        );
    }
    let loaded = load_model(&a.model)?;
    let input = load_input(&a.input, &loaded)?;
    let z = loaded.network.forward(&input.x)?;
    let mut text = String::new();
    for sample in z.outer_iter() {
        let values: Vec<String> = sample.iter().map(|v| format!("{v:?}")).collect();
        text.push_str(&values.join("\t"));
        text.push('\n');
    }
    out(&text)
}

/// `--heatmap`'s pictures, one per sample, channels summed: blue-white-red around 0 for real
/// relevance; black-red-yellow-white ("hot") from 0 to the largest value for the others, path
/// counts on a log scale.
fn heatmaps(r: &RelevanceArray) -> CliResult<Vec<RgbImage>> {
    let shape = |e: ndarray::ShapeError| CliError::Failure(e.to_string());
    r.to_f64()
        .outer_iter()
        .map(|sample| {
            let map = match sample.ndim() {
                3 => sample
                    .into_dimensionality::<Ix3>()
                    .map_err(shape)?
                    .sum_axis(Axis(0)),
                _ => sample
                    .into_dimensionality::<Ix2>()
                    .map_err(shape)?
                    .to_owned(),
            };
            let (cmap, scale) = match r {
                RelevanceArray::Real(_) => (Colormap::Bwr, Scale::Symmetric),
                RelevanceArray::Counting(_) => (Colormap::Hot, Scale::Log1p),
                RelevanceArray::Viterbi(_) | RelevanceArray::Boolean(_) => {
                    let max = map
                        .iter()
                        .filter(|v| v.is_finite())
                        .fold(0.0, |m, &v| v.max(m));
                    (Colormap::Hot, Scale::Range { min: 0.0, max })
                }
            };
            Ok(klrp::viz::heatmap_rgb(map.view(), cmap, scale))
        })
        .collect()
}

/// Writes the heatmaps to `path`, or for a batch to `R_0.png`, `R_1.png`, … beside it.
fn save_heatmaps(path: &Path, pictures: &[RgbImage]) -> CliResult<()> {
    for (s, picture) in pictures.iter().enumerate() {
        let file = if pictures.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ext = path
                .extension()
                .map(|e| e.to_string_lossy().into_owned())
                .unwrap_or_else(|| "png".into());
            path.with_file_name(format!("{stem}_{s}.{ext}"))
        };
        klrp::viz::save_png(&file, picture)?;
    }
    Ok(())
}
