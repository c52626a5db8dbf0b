//! What the operator's commands do: `voxdesk kb import/export/search`, `voxdesk train` and
//! `voxdesk eval nlu`. Each opens the database and models named by the config.

use crate::brain::load::{load_encoder, load_nlu, open_db, prepare_kb, train_and_store};
use crate::config::Config;
use crate::kb;
use crate::nlu::training;
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::Path;

/// `voxdesk kb import FILE`: adds or updates entries by key, with embeddings.
pub fn kb_import(cfg: &Config, file: &Path) -> Result<String> {
    let entries = kb::read_file(file)?;
    let mut conn = open_db(cfg)?;
    let enc = if cfg.nlu.enabled {
        Some(load_encoder(cfg)?)
    } else {
        None
    };
    let r = crate::store::kb::import(
        &mut conn,
        &entries,
        enc.as_deref(),
        &format!("import:{}", file.display()),
    )?;
    Ok(format!(
        "kb import: {} entries read from {}: {} added, {} updated, {} unchanged",
        entries.len(),
        file.display(),
        r.added,
        r.updated,
        r.unchanged
    ))
}

/// `voxdesk kb export FILE`: every entry, in the format the extension names.
pub fn kb_export(cfg: &Config, file: &Path) -> Result<String> {
    let conn = open_db(cfg)?;
    crate::store::kb::seed_sample(&mut open_db(cfg)?, None)?;
    let entries = crate::store::kb::load(&conn, true)?;
    let text = match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "md" | "markdown" => kb::format::to_markdown(&entries),
        "jsonl" | "json" => kb::format::to_jsonl(&entries),
        "csv" => kb::format::to_csv(&entries),
        _ => bail!(
            "{}: unknown format (use .md, .jsonl or .csv)",
            file.display()
        ),
    };
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(format!(
        "kb export: {} entries written to {}",
        entries.len(),
        file.display()
    ))
}

/// `voxdesk kb search TEXT`: the best entries and their scores.
pub fn kb_search(cfg: &Config, text: &str) -> Result<String> {
    let enc = if cfg.nlu.enabled {
        Some(load_encoder(cfg)?)
    } else {
        None
    };
    prepare_kb(cfg, enc.as_deref())?;
    let index = crate::store::kb::open_index(&cfg.database_path())?
        .multilingual(enc.as_ref().is_some_and(|e| e.multilingual()));
    let emb = match &enc {
        Some(e) => Some(e.embed(text)?),
        None => None,
    };
    let mut out = String::new();
    for h in index.search(text, emb.as_deref(), 5) {
        let e = &index.entries[h.entry];
        let _ = writeln!(
            out,
            "{:.3}  {:<20} semantic {:.3} lexical {:.3}  {}",
            h.score,
            h.key,
            h.semantic,
            h.lexical,
            e.answer(if crate::nlu::text::looks_chinese(text) {
                "zh"
            } else {
                "en"
            })
            .unwrap_or("")
        );
    }
    if out.is_empty() {
        out.push_str("no entry matches\n");
    }
    Ok(out)
}

/// `voxdesk train`.
pub fn train(cfg: &Config) -> Result<String> {
    if !cfg.nlu.enabled {
        bail!("nlu.enabled is false: there is no model to train");
    }
    let enc = load_encoder(cfg)?;
    prepare_kb(cfg, Some(enc.as_ref()))?;
    Ok(train_and_store(cfg, enc.as_ref())?.1)
}

/// `voxdesk eval nlu --set FILE`: trains first when nothing is stored yet.
pub fn eval_nlu(cfg: &Config, set: &Path) -> Result<String> {
    let examples = training::read_set(set)?;
    if examples.is_empty() {
        bail!("{}: no examples", set.display());
    }
    let conn = open_db(cfg)?;
    let nlu = load_nlu(cfg, &conn)?;
    let mut pre = String::new();
    if nlu.heads().intent.is_none() {
        let (heads, msg) = train_and_store(cfg, nlu.encoder().as_ref())?;
        nlu.set_heads(heads);
        pre = format!("{msg}\n");
    }
    let r = training::evaluate(&nlu, &examples, cfg.nlu.anger_threshold)?;
    Ok(format!(
        "{pre}eval: {} examples from {} (encoder {}, intent threshold {})\n{}",
        examples.len(),
        set.display(),
        nlu.encoder().name(),
        cfg.nlu.intent_threshold,
        r.text
    ))
}

/// Runs one of the store's async operations from a command (its own small runtime).
fn with_store<T>(
    cfg: &Config,
    f: impl AsyncFnOnce(&crate::store::Store) -> Result<T>,
) -> Result<T> {
    let path = cfg.database_path();
    anyhow::ensure!(
        path.is_file(),
        "no database at {} (has the server run here? see --data-dir)",
        path.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = crate::store::Store::open(&path)?;
        f(&store).await
    })
}

/// `voxdesk caller export NUMBER [--recordings DIR]`: everything stored about a caller, as
/// JSON; with a folder, their recordings are copied into it too.
pub fn caller_export(cfg: &Config, number: &str, recordings: Option<&Path>) -> Result<String> {
    let data = with_store(cfg, async |s| Ok(s.caller_export(number).await?))?;
    if let Some(dir) = recordings {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for r in &data.recordings {
            let from = Path::new(r);
            let Some(name) = from.file_name() else {
                continue;
            };
            std::fs::copy(from, dir.join(name))
                .with_context(|| format!("cannot copy recording {r}"))?;
        }
    }
    Ok(serde_json::to_string_pretty(&data)?)
}

/// `voxdesk caller erase NUMBER`: deletes a caller's calls, transcripts, summaries, tickets
/// and recordings; an audit row keeps who did it and the counts (not the number).
pub fn caller_erase(cfg: &Config, number: &str) -> Result<String> {
    let actor = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "operator".into())
    );
    let e = with_store(cfg, async |s| Ok(s.caller_erase(number, &actor).await?))?;
    let files = crate::store::retention::delete_files(&e.recordings);
    Ok(format!(
        "erased {} call(s), {} turn(s), {} escalation(s), {} ticket(s), {} recording(s)",
        e.calls, e.turns, e.escalations, e.tickets, files
    ))
}

/// `voxdesk user add NAME --role ROLE`: a user of the HTTP API (the console); prints their
/// token, which is shown this once (only its hash is stored).
pub fn user_add(cfg: &Config, name: &str, role: &str) -> Result<String> {
    let token = with_store_or_create(cfg, async |s| Ok(s.user_new(name, role).await?))?;
    with_store(cfg, async |s| {
        s.audit("cli", "user-add", &format!("{name} ({role})"));
        Ok(s.flush().await?)
    })?;
    Ok(format!("user {name} ({role}) token: {token}\n(shown once: give it to {name}; `voxdesk user add` again makes a new one)"))
}

/// `voxdesk user list`.
pub fn user_list(cfg: &Config) -> Result<String> {
    let users = with_store_or_create(cfg, async |s| Ok(s.users().await?))?;
    let mut out = String::new();
    for u in users {
        let _ = writeln!(out, "{:<24} {}", u.name, u.role);
    }
    if out.is_empty() {
        out.push_str("no users (the API is open to loopback scripts only while there are none and api.token is empty)");
    }
    Ok(out)
}

/// `voxdesk user remove NAME`.
pub fn user_remove(cfg: &Config, name: &str) -> Result<String> {
    let gone = with_store(cfg, async |s| {
        let gone = s.user_remove(name).await?;
        if gone {
            s.audit("cli", "user-remove", name);
            s.flush().await?;
        }
        Ok(gone)
    })?;
    anyhow::ensure!(gone, "no user {name}");
    Ok(format!("user {name} removed"))
}

/// Like `with_store`, creating the database if there is none yet (users before the first
/// start of the server).
fn with_store_or_create<T>(
    cfg: &Config,
    f: impl AsyncFnOnce(&crate::store::Store) -> Result<T>,
) -> Result<T> {
    open_db(cfg)?;
    with_store(cfg, f)
}

/// `voxdesk eval calls DIR` or `--lines FILE`: replays scripted conversations through the
/// bot (see `replay`); recordings named by a script go through `voxdesk talk --wav`'s path
/// and the conversations are written to `<data_dir>/eval/<script>.wav`.
pub fn eval_calls(
    cfg: &Config,
    dir: Option<&Path>,
    lines: Option<&Path>,
    expect: &str,
) -> Result<String> {
    use crate::replay;
    let scripts = match (dir, lines) {
        (Some(d), None) => replay::read_dir(d)?,
        (None, Some(f)) => replay::read_lines(f, replay::parse_expect(expect)?)?,
        _ => bail!("give a folder of scripts or --lines FILE"),
    };
    let brain =
        crate::brain::Brain::load(cfg).context("the dialog (NLU models and knowledge base)")?;
    let audio = if scripts.iter().any(|s| s.wav.is_some()) {
        let speech = crate::speech::Speech::load(cfg)
            .context("speech models for the WAV scripts (run scripts/fetch-models.sh)")?;
        let (greeting, _) = crate::prompts::greeting(cfg, Some(&speech))?;
        // The conversations as the caller heard them, to listen to.
        let out = cfg.paths.data_dir.join("eval");
        std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
        Some((speech, greeting, out))
    } else {
        None
    };
    let mut outcomes = Vec::new();
    for s in &scripts {
        let o = match (&s.wav, &audio) {
            (Some(w), Some((speech, greeting, tmp))) => {
                let out = tmp.join(format!("{}.wav", s.name));
                let ex = crate::local_line::run_wav(cfg, speech, &brain, greeting, w, &out)
                    .with_context(|| format!("{}: {}", s.name, w.display()))?;
                replay::from_exchanges(s, &ex)
            }
            _ => replay::run_text(&brain, s),
        };
        outcomes.push(o);
    }
    Ok(format!(
        "eval calls: {} script(s), nlu.anger_threshold {}, dialog.handover_confidence {}\n{}",
        scripts.len(),
        cfg.nlu.anger_threshold,
        cfg.dialog.handover_confidence,
        replay::report(&outcomes)
    ))
}
