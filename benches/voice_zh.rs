//! The Chinese voice (Kokoro-82M through ONNX Runtime, voxdesk's Mandarin front end) under
//! load: N "calls" at once each ask for replies that are not cached (flow confirmations,
//! callback lines with numbers, answers with the caller's details), rendered the way the
//! reply path renders them (clause by clause, `speech_chunks`), on one voice with N sessions
//! as the server loads it (`speech.workers` sessions). Prints, per concurrency, the time to
//! the first clause's audio (what the caller waits for after the bot decided what to say),
//! the real-time factor of whole replies, and the process's memory.
//!
//!   cargo bench --bench voice_zh                      (1 and 4 concurrent calls)
//!   VOXDESK_BENCH_CALLS=1,2,4 VOXDESK_BENCH_TTS_THREADS=1 cargo bench --bench voice_zh

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use voxdesk::speech::kokoro::KokoroVoice;
use voxdesk::speech::tts::{speech_chunks, Tts};

const REPLIES: &[&str] = &[
    "地址是人民路一百二十八号，联系电话13912345678。确认登记吗？请说“是”或按1，说“不是”或按2。",
    "已登记，您的故障单号是20481。工程师会在四小时内联系您。还有什么可以帮您？",
    "目前客服人员都在忙，我已为您登记回电，号码是13800138000，参考编号5521。感谢您的来电，再见。",
    "您本月的账单是128.50元，将在12月21日自动扣款。还有什么可以帮您？",
    "好的，我再说一遍。每月二十一号是缴费截止日，逾期会加收五元滞纳金。",
    "您前面还有2位客户。如需我们稍后回电，请按1。",
];

fn vm_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let calls: Vec<usize> = std::env::var("VOXDESK_BENCH_CALLS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads: usize = std::env::var("VOXDESK_BENCH_TTS_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(cores);
    let before = vm_rss_mb();
    let t = Instant::now();
    let voice = Arc::new(
        KokoroVoice::load(
            &models.join("onnxruntime/libonnxruntime.so.1.31.1"),
            &models.join("kokoro/kokoro-v1.0.int8.onnx"),
            &models.join("kokoro/vocab.json"),
            &models.join("kokoro/voices/zf_xiaobei.bin"),
            cores,
            threads,
        )
        .expect("Kokoro files (run scripts/fetch-models.sh)"),
    );
    println!(
        "voice_zh: {cores} cores, {cores} sessions of {threads} thread(s); loaded in {:.2} s, +{:.0} MB",
        t.elapsed().as_secs_f64(),
        vm_rss_mb() - before
    );
    // The jieba dictionary and the first inference are one-off costs: paid before timing.
    voice.synthesize("您好。").unwrap();
    for &n in &calls {
        let t0 = Instant::now();
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let v = voice.clone();
                std::thread::spawn(move || {
                    let mut firsts = Vec::new();
                    let (mut busy, mut spoken) = (0.0, 0.0);
                    for k in 0..REPLIES.len() {
                        let reply = REPLIES[(i + k) % REPLIES.len()];
                        let t = Instant::now();
                        let mut first = None;
                        for chunk in speech_chunks(reply) {
                            let pcm = v.synthesize(&chunk).unwrap();
                            spoken += pcm.len() as f64 / 8000.0;
                            first.get_or_insert(t.elapsed().as_secs_f64());
                        }
                        busy += t.elapsed().as_secs_f64();
                        firsts.push(first.unwrap_or(0.0));
                    }
                    (firsts, busy, spoken)
                })
            })
            .collect();
        let mut firsts = Vec::new();
        let (mut busy, mut spoken) = (0.0, 0.0);
        for h in handles {
            let (f, b, s) = h.join().unwrap();
            firsts.extend(f);
            busy += b;
            spoken += s;
        }
        println!(
            "voice_zh: {n} concurrent call(s): first audio p50 {:.2} s, p95 {:.2} s, max {:.2} s; real-time factor per call {:.2}; {} replies in {:.1} s; RSS {:.0} MB",
            pct(&mut firsts.clone(), 0.5),
            pct(&mut firsts.clone(), 0.95),
            pct(&mut firsts, 1.0),
            busy / spoken.max(0.001),
            n * REPLIES.len(),
            t0.elapsed().as_secs_f64(),
            vm_rss_mb()
        );
    }
}
