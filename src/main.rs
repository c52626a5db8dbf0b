//! The `voxdesk` command line: `serve` runs the server, `doctor` checks an installation.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use voxdesk::config::{Config, Overrides};
use voxdesk::endpoint::Endpoint;
use voxdesk::media::ports::PortPool;
use voxdesk::shared::Shared;
use voxdesk::store::{now_ms, Store};
use voxdesk::transport::Transport;

#[derive(Parser)]
#[command(
    name = "voxdesk",
    version,
    about = "On-premises AI voice call-center server"
)]
struct Cli {
    /// Config file (TOML). Without one, built-in defaults are used.
    #[arg(long, short, global = true, env = "VOXDESK_CONFIG")]
    config: Option<PathBuf>,
    /// Where state lives (SQLite database, recordings). Default ./data
    #[arg(long, global = true, env = "VOXDESK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where model files are read from. Default ./models
    #[arg(long, global = true, env = "VOXDESK_MODELS_DIR")]
    models_dir: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. "info" or "voxdesk=debug".
    #[arg(long, global = true, env = "VOXDESK_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// SIP bind address (overrides sip.bind).
        #[arg(long)]
        bind: Option<String>,
        /// SIP port (overrides sip.port).
        #[arg(long)]
        sip_port: Option<u16>,
    },
    /// Check the configuration, database, prompts and ports, then exit.
    Doctor,
    /// Talk to the bot locally: microphone and speaker, or a WAV file in and out.
    Talk {
        /// Caller audio from this WAV file (any rate) instead of the microphone.
        #[arg(long, requires = "out")]
        wav: Option<PathBuf>,
        /// Where to write the conversation (stereo 8 kHz WAV: left caller, right bot).
        #[arg(long, requires = "wav")]
        out: Option<PathBuf>,
    },
    /// Say a text with the configured voice for its language (Piper for English, Kokoro for
    /// Chinese) into an 8 kHz WAV, as a caller would hear it; prints how long it took.
    Say {
        /// The text (Chinese characters select the Chinese voice).
        text: String,
        /// Where to write the speech (mono 8 kHz WAV).
        #[arg(long)]
        out: PathBuf,
    },
    /// The knowledge base: import, export, search.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Fit the intent and emotion heads on the knowledge base and the labelled examples
    /// (seconds); a running server picks them up by itself.
    Train,
    /// Measure the models on a labelled set.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// A caller's data: export it, or erase it (their right to access and to erasure).
    Caller {
        #[command(subcommand)]
        command: CallerCommand,
    },
    /// Users of the HTTP API (the console): add, list, remove.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Print the most recent call detail records.
    Calls {
        /// How many calls to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum CallerCommand {
    /// Print everything stored about the caller with this number as JSON.
    Export {
        number: String,
        /// Also copy their recordings into this folder.
        #[arg(long)]
        recordings: Option<PathBuf>,
    },
    /// Delete the caller's calls, transcripts, summaries, tickets and recordings.
    Erase { number: String },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (or give them a new token) and print the token.
    Add {
        name: String,
        /// admin, supervisor or agent (an agent's name should be their SIP username).
        #[arg(long)]
        role: String,
    },
    List,
    Remove {
        name: String,
    },
}

#[derive(Subcommand)]
enum KbCommand {
    /// Add or update entries from a file (.md, .jsonl or .csv), matched by key.
    Import { file: PathBuf },
    /// Write every entry to a file (.md, .jsonl or .csv).
    Export { file: PathBuf },
    /// Show the entries that best answer a question, with their scores.
    Search { text: String },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Intent accuracy, per-class precision/recall, confusion matrices, anger recall and
    /// false escalations, NLU latency.
    Nlu {
        /// Labelled set: JSONL or CSV with text, intent, emotion (and lang).
        #[arg(long)]
        set: PathBuf,
    },
    /// Replay scripted conversations through the bot and report containment, escalations
    /// by reason and the turns that caused them (a folder of *.txt scripts, or --lines).
    Calls {
        /// Folder of scripts: one caller turn per line, with `# lang:`, `# expect:` and
        /// `# wav:` headers (eval/calls/ in the repository is the regression set).
        dir: Option<PathBuf>,
        /// Every line of this file is a call of its own that should stay with the bot.
        #[arg(long, conflicts_with = "dir")]
        lines: Option<PathBuf>,
        /// With --lines: what each line should lead to (contained, escalated, ...);
        /// `escalated` on a set of angry lines measures anger recall.
        #[arg(long, requires = "lines", default_value = "contained")]
        expect: String,
    },
    /// Say every line of a file with the configured voice for its language, transcribe it
    /// with Whisper, and report the character (Chinese) or word (English) error rate, the
    /// time to the first audio and the real-time factor.
    Voice {
        /// One reply per line (`#` starts a comment).
        #[arg(long)]
        lines: PathBuf,
    },
}

fn overrides(cli: &Cli) -> Overrides {
    let (bind, port) = match &cli.command {
        Some(Command::Serve { bind, sip_port }) => (bind.clone(), *sip_port),
        _ => (None, None),
    };
    Overrides {
        data_dir: cli.data_dir.clone(),
        models_dir: cli.models_dir.clone(),
        bind,
        port,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cli.log)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        None | Some(Command::Serve { .. }) => serve(&cli),
        Some(Command::Doctor) => doctor(&cli),
        Some(Command::Talk { wav, out }) => talk(&cli, wav.as_deref(), out.as_deref()),
        Some(Command::Say { text, out }) => say(&cli, text, out),
        Some(Command::Calls { limit }) => calls(&cli, *limit),
        Some(Command::User { command }) => load_config(&cli).and_then(|cfg| {
            let out = match command {
                UserCommand::Add { name, role } => voxdesk::admin::user_add(&cfg, name, role)?,
                UserCommand::List => voxdesk::admin::user_list(&cfg)?,
                UserCommand::Remove { name } => voxdesk::admin::user_remove(&cfg, name)?,
            };
            println!("{}", out.trim_end());
            Ok(())
        }),
        Some(Command::Caller { command }) => load_config(&cli).and_then(|cfg| {
            let out = match command {
                CallerCommand::Export { number, recordings } => {
                    voxdesk::admin::caller_export(&cfg, number, recordings.as_deref())?
                }
                CallerCommand::Erase { number } => voxdesk::admin::caller_erase(&cfg, number)?,
            };
            println!("{out}");
            Ok(())
        }),
        Some(Command::Kb { command }) => load_config(&cli).and_then(|cfg| {
            let out = match command {
                KbCommand::Import { file } => voxdesk::admin::kb_import(&cfg, file)?,
                KbCommand::Export { file } => voxdesk::admin::kb_export(&cfg, file)?,
                KbCommand::Search { text } => voxdesk::admin::kb_search(&cfg, text)?,
            };
            println!("{}", out.trim_end());
            Ok(())
        }),
        Some(Command::Train) => load_config(&cli).and_then(|cfg| {
            println!("{}", voxdesk::admin::train(&cfg)?);
            Ok(())
        }),
        Some(Command::Eval {
            command: EvalCommand::Nlu { set },
        }) => load_config(&cli).and_then(|cfg| {
            println!("{}", voxdesk::admin::eval_nlu(&cfg, set)?.trim_end());
            Ok(())
        }),
        Some(Command::Eval {
            command: EvalCommand::Voice { lines },
        }) => load_config(&cli).and_then(|cfg| {
            println!(
                "{}",
                voxdesk::eval_voice::eval_voice(&cfg, lines)?.trim_end()
            );
            Ok(())
        }),
        Some(Command::Eval {
            command: EvalCommand::Calls { dir, lines, expect },
        }) => load_config(&cli).and_then(|cfg| {
            let out = voxdesk::admin::eval_calls(&cfg, dir.as_deref(), lines.as_deref(), expect)?;
            println!("{}", out.trim_end());
            Ok(())
        }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxdesk: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    Ok(Config::load(cli.config.as_deref(), &overrides(cli))?)
}

fn doctor(cli: &Cli) -> Result<()> {
    let cfg = load_config(cli)?;
    println!(
        "config      ok ({})",
        cli.config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".into())
    );
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.paths.data_dir.display()))?;
    let conn = voxdesk::store::open_connection(&cfg.database_path())?;
    println!(
        "database    ok ({}, schema version {})",
        cfg.database_path().display(),
        voxdesk::store::schema_version(&conn)?
    );
    let (g, source) = voxdesk::prompts::greeting(&cfg, None)?;
    println!(
        "greeting    ok ({:.1} s at 8 kHz, from the {source})",
        g.len() as f32 / 8000.0
    );
    let probe = std::net::UdpSocket::bind((cfg.sip.bind.as_str(), cfg.sip.port));
    match probe {
        Ok(_) => println!("sip port    ok ({}:{} is free)", cfg.sip.bind, cfg.sip.port),
        Err(e) => println!(
            "sip port    WARNING: {}:{}: {e} (is voxdesk already running?)",
            cfg.sip.bind, cfg.sip.port
        ),
    }
    println!(
        "agents      {} account(s){}",
        cfg.agents.len(),
        if cfg.demo_agents {
            " (demo: agent1/agent1pass, agent2/agent2pass)"
        } else {
            ""
        }
    );
    let mut failed = 0;
    for c in voxdesk::models::check(&cfg) {
        println!(
            "{:<11} {} {}",
            c.what,
            if c.ok { "ok" } else { "ERROR" },
            c.detail
        );
        failed += usize::from(!c.ok);
    }
    anyhow::ensure!(failed == 0, "{failed} model check(s) failed (see above)");
    Ok(())
}

fn calls(cli: &Cli, limit: u32) -> Result<()> {
    let cfg = load_config(cli)?;
    let path = cfg.database_path();
    anyhow::ensure!(
        path.is_file(),
        "no database at {} (has the server run here? see --data-dir)",
        path.display()
    );
    let conn = voxdesk::store::open_connection(&path)?;
    println!(
        "{:<16}  {:<19}  {:<28}  {:<26}  {:<5}  {:>7}  {:<16}  {:<6}  recording",
        "id", "started (UTC)", "from", "to", "codec", "talk s", "end", "dtmf"
    );
    for c in voxdesk::store::recent_calls(&conn, limit)? {
        let talk = c
            .talk_secs
            .map(|t| format!("{t:.1}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<19}  {:<28.28}  {:<26.26}  {:<5}  {talk:>7}  {:<16}  {:<6.6}  {}",
            c.id,
            c.started,
            c.from,
            c.to,
            c.codec.unwrap_or_default(),
            c.end,
            c.dtmf,
            c.recording
        );
    }
    Ok(())
}

fn say(cli: &Cli, text: &str, out: &std::path::Path) -> Result<()> {
    let cfg = load_config(cli)?;
    let chinese = voxdesk::speech::tts::has_han(text);
    let t = std::time::Instant::now();
    let voice = voxdesk::prompts::load_voice(&cfg, chinese).context(if chinese {
        "models.tts_voice_zh (run scripts/fetch-models.sh)"
    } else {
        "models.tts_voice (run scripts/fetch-models.sh)"
    })?;
    let loaded = t.elapsed();
    let t = std::time::Instant::now();
    let mut pcm = Vec::new();
    voice.synthesize_streaming(text, &mut |s| pcm.extend(s))?;
    let took = t.elapsed();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(out, spec)
        .with_context(|| format!("cannot write {}", out.display()))?;
    for s in &pcm {
        w.write_sample(*s)?;
    }
    w.finalize()?;
    let secs = pcm.len() as f64 / 8000.0;
    println!(
        "{}: {secs:.2} s of speech in {:.2} s (real-time factor {:.2}; voice loaded in {:.2} s)",
        out.display(),
        took.as_secs_f64(),
        took.as_secs_f64() / secs.max(0.001),
        loaded.as_secs_f64()
    );
    Ok(())
}

fn talk(cli: &Cli, wav: Option<&std::path::Path>, out: Option<&std::path::Path>) -> Result<()> {
    let cfg = load_config(cli)?;
    let speech = voxdesk::speech::Speech::load(&cfg)
        .context("speech models (run scripts/fetch-models.sh, or fix [models] in the config)")?;
    let (greeting, _) = voxdesk::prompts::greeting(&cfg, Some(&speech))?;
    let brain =
        voxdesk::brain::Brain::load(&cfg).context("the dialog (NLU models and knowledge base)")?;
    match (wav, out) {
        (Some(wav), Some(out)) => {
            let ex = voxdesk::local_line::run_wav(&cfg, &speech, &brain, &greeting, wav, out)?;
            for (i, e) in ex.iter().enumerate() {
                println!(
                    "turn {}: reply after {} ms{}",
                    i + 1,
                    e.latency_ms,
                    if e.interrupted { " (interrupted)" } else { "" }
                );
            }
            println!("wrote {} ({} turn(s))", out.display(), ex.len());
            Ok(())
        }
        _ => voxdesk::local_line::run_device(&cfg, &speech, &brain, &greeting),
    }
}

fn serve(cli: &Cli) -> Result<()> {
    let cfg = load_config(cli)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("voxdesk")
        .build()?;
    rt.block_on(run(cfg))
}

async fn run(cfg: Config) -> Result<()> {
    // Everything the server writes (database, recordings, rendered answers) holds callers'
    // data: readable by this user alone, however the process was started.
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    if !cfg.demo_agents {
        for a in cfg.agents.iter().filter(|a| a.password.is_some()) {
            tracing::warn!(
                agent = %a.username,
                "plain-text password in the config; give ha1 = md5(\"{}:{}:password\") instead",
                a.username,
                cfg.sip.realm
            );
        }
    }
    std::fs::create_dir_all(&cfg.paths.data_dir)
        .with_context(|| format!("cannot create data dir {}", cfg.paths.data_dir.display()))?;
    voxdesk::privacy::init(&cfg.privacy).context("privacy.patterns")?;
    let store = Store::open(&cfg.database_path())?;
    store.close_orphans(now_ms());
    voxdesk::store::retention::spawn(store.clone(), cfg.privacy.clone());
    let speech = if cfg.speech.enabled {
        let c = cfg.clone();
        let s = tokio::task::spawn_blocking(move || voxdesk::speech::Speech::load(&c))
            .await?
            .context("speech models (run scripts/fetch-models.sh, fix [models], or set speech.enabled = false)")?;
        for (what, t) in &s.load_times {
            tracing::info!(model = %what, ms = t.as_millis() as u64, "model loaded");
        }
        tracing::info!(language = %s.language, workers = s.pool.workers(), vad = s.vad.name(), "speech ready");
        let s = Arc::new(s);
        let c = cfg.clone();
        let brain = tokio::task::spawn_blocking(move || voxdesk::brain::Brain::load(&c))
            .await?
            .context("the dialog (NLU models and knowledge base)")?;
        // Fixed answers in the languages callers may use, rendered ahead (and kept on disk).
        let languages: &[&str] = match s.language.as_str() {
            "en" => &["en"],
            "zh" => &["zh"],
            _ => &["en", "zh"],
        };
        s.prewarm(brain.fixed_pieces(languages));
        (Some(s), Some(Arc::new(brain)))
    } else {
        tracing::info!("speech.enabled = false: greeting, DTMF and recording only");
        // The knowledge base still exists for the API (full-text search only).
        let c = cfg.clone();
        tokio::task::spawn_blocking(move || voxdesk::brain::load::prepare_kb(&c, None)).await??;
        (None, None)
    };
    let (speech, brain) = speech;
    if let Some(b) = brain.clone() {
        // Newly trained heads and knowledge-base changes (CLI, API) are picked up without a
        // restart, also while no call is running.
        let every = std::time::Duration::from_secs(cfg.nlu.reload_secs);
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                let b = b.clone();
                let _ = tokio::task::spawn_blocking(move || b.maybe_reload()).await;
            }
        });
    }
    let (greeting, source) = {
        let cfg = cfg.clone();
        let sp = speech.clone();
        tokio::task::spawn_blocking(move || voxdesk::prompts::greeting(&cfg, sp.as_deref()))
            .await??
    };
    match &source {
        voxdesk::prompts::Source::Builtin { why } => {
            tracing::warn!(%why, "greeting: using the built-in recording (run scripts/fetch-models.sh for the voice)")
        }
        s => {
            tracing::info!(source = %s, seconds = greeting.len() as f32 / 8000.0, "greeting rendered")
        }
    }
    let greeting = Arc::new(greeting);
    let bind_ip: std::net::IpAddr = cfg.sip.bind.parse().context("sip.bind")?;
    let (in_tx, in_rx) = tokio::sync::mpsc::channel(4096);
    let addr = std::net::SocketAddr::new(bind_ip, cfg.sip.port);
    let udp = cfg.sip.transports.iter().any(|t| t == "udp");
    let tcp = cfg.sip.transports.iter().any(|t| t == "tcp");
    let tls = match (&cfg.sip.tls_cert, &cfg.sip.tls_key) {
        (Some(c), Some(k)) if cfg.sip.transports.iter().any(|t| t == "tls") => Some((
            std::net::SocketAddr::new(bind_ip, cfg.sip.tls_port),
            voxdesk::transport::tls_config(c, k).map_err(anyhow::Error::msg)?,
        )),
        _ => None,
    };
    let transport = Transport::bind(
        addr,
        udp,
        tcp,
        tls,
        voxdesk::transport::StreamLimits::from_config(&cfg.limits),
        in_tx,
    )
    .await
    .with_context(|| format!("cannot bind SIP on {addr} (sip.bind / sip.port)"))?;
    let sip_port = transport
        .local_udp
        .or(transport.local_tcp)
        .map(|a| a.port())
        .unwrap_or(cfg.sip.port);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let router = cfg
        .routing
        .enabled
        .then(|| voxdesk::routing::Router::start(&cfg));
    let mut call_info_url = cfg.routing.console_url.clone();
    let live = voxdesk::call::LiveCalls::default();
    if cfg.api.enabled {
        let addr = voxdesk::api::start(
            Arc::new(cfg.clone()),
            store.clone(),
            brain.clone(),
            router.clone(),
            live.clone(),
            stop_rx.clone(),
        )
        .await?;
        tracing::info!(%addr, "HTTP API listening");
        let users = store.user_count().await.unwrap_or(0);
        if users == 0 && cfg.api.token.is_empty() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the HTTP API is on a non-loopback address with no users and no api.token: it refuses every request until `voxdesk user add`");
        }
        if call_info_url.is_empty() {
            call_info_url = format!("http://{addr}/api/calls/");
        }
    }
    let shared = Arc::new(Shared {
        ports: PortPool::new(cfg.media.rtp_port_min, cfg.media.rtp_port_max),
        store: store.clone(),
        greeting,
        speech,
        brain,
        router,
        call_info_url,
        bind_ip,
        advertised: cfg.advertised_address(),
        sip_port,
        tls_port: transport.local_tls.map(|a| a.port()).unwrap_or(0),
        server_header: cfg.sip.user_agent.clone(),
        trunks: voxdesk::config::Trunks::parse(&cfg.trunks)?,
        cfg: cfg.clone(),
    });
    tracing::info!(
        udp = ?transport.local_udp, tcp = ?transport.local_tcp, tls = ?transport.local_tls, database = %cfg.database_path().display(),
        recordings = %cfg.recordings_dir().display(), agents = cfg.agents.len(), "voxdesk ready"
    );
    let endpoint = Endpoint::new(shared, live, transport, in_rx).await;
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested");
        let _ = stop_tx.send(true);
    });
    endpoint.run(stop_rx).await;
    store.flush().await?;
    tracing::info!("voxdesk stopped; database flushed");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
