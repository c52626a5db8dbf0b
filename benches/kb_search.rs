//! Knowledge-base search at scale: brute-force cosine over every question's unit vector, fused
//! with SQLite FTS5 BM25, as `KbIndex::search` does for each caller turn.
//!
//! For each size (`VOXDESK_BENCH_KB`, entries, default "1000,5000,20000"; three question
//! variants per entry) a SQLite file is filled with entries whose questions are 6-10 words drawn
//! from the sample knowledge base's English questions, and random unit vectors of the
//! encoder's size (384) stand in for their embeddings: the cost of a dot product does not
//! depend on what the vector means, and embedding 60,000 questions would take minutes. Then
//! 200 queries (words from the same vocabulary, random vectors) are timed.
//!
//!     cargo bench --bench kb_search

mod support;

use std::time::Instant;
use voxdesk::kb::KbEntry;

const DIM: usize = 384;
const QUERIES: usize = 200;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    fn sentence(&mut self, words: &[String]) -> String {
        let n = 6 + self.below(5);
        (0..n)
            .map(|_| words[self.below(words.len())].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn vocabulary() -> Vec<String> {
    let sample = include_str!("../kb/telecom.md");
    let mut words: Vec<String> = sample
        .lines()
        .filter_map(|l| l.strip_prefix("Q: "))
        .filter(|q| q.is_ascii())
        .flat_map(|q| q.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| w.len() > 1)
        .map(str::to_lowercase)
        .collect();
    words.sort();
    words.dedup();
    words
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let sizes: Vec<usize> = std::env::var("VOXDESK_BENCH_KB")
        .unwrap_or_else(|_| "1000,5000,20000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let words = vocabulary();
    println!(
        "kb_search: {} words of vocabulary, {DIM}-dimensional vectors, 3 questions per entry, {QUERIES} queries; load average {}",
        words.len(),
        support::load_average()
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kb.sqlite");
        let mut conn = voxdesk::store::open_connection(&path).unwrap();
        let entries: Vec<KbEntry> = (0..n)
            .map(|i| {
                let mut e = KbEntry::new(&format!("entry_{i}"));
                for _ in 0..3 {
                    e.questions.push(("en".into(), rng.sentence(&words)));
                }
                e.answers.insert("en".into(), format!("Answer number {i}."));
                e
            })
            .collect();
        let t = Instant::now();
        voxdesk::store::kb::import(&mut conn, &entries, None, "bench").unwrap();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM kb_questions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let tx = conn.transaction().unwrap();
        for id in ids {
            let blob: Vec<u8> = rng
                .unit_vector()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            tx.execute(
                "UPDATE kb_questions SET embedding = ?2 WHERE id = ?1",
                rusqlite::params![id, blob],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        let fill_ms = t.elapsed().as_millis();
        let t = Instant::now();
        let index = voxdesk::store::kb::open_index(&path).unwrap();
        let open_ms = t.elapsed().as_millis();
        let (mut times, mut lexical) = (Vec::new(), Vec::new());
        let mut found = 0;
        for _ in 0..QUERIES {
            let text = rng.sentence(&words);
            let q = rng.unit_vector();
            let t = Instant::now();
            let hits = index.search(&text, Some(&q), 5);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            found += usize::from(!hits.is_empty());
            // The full-text part alone (no vector: what a server without the encoder does).
            let t = Instant::now();
            index.search(&text, None, 5);
            lexical.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{n:>6} entries ({} questions, {:.0} MiB of vectors): search p50 {:.2} ms, p95 {:.2} ms (full-text part alone p50 {:.2} ms); index load {open_ms} ms; filling the file {fill_ms} ms; {found}/{QUERIES} queries with hits",
            n * 3,
            (n * 3 * DIM * 4) as f64 / (1024.0 * 1024.0),
            pct(&mut times, 0.5),
            pct(&mut times, 0.95),
            pct(&mut lexical, 0.5),
        );
    }
}
