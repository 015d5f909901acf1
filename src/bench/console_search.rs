//! `einvoice-worker bench-console-search`: the console's search by IRN among many job rows
//! (issue 25: under 100 ms among 1 million on this machine). A benchmark, not a test: it fills
//! its own database once (kept for later runs), then times what the jobs page asks the store for
//! a search by IRN (the page of rows and the count, one after the other) for many IRNs, and
//! prints the percentiles and the query plan.
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::store::console::Search;
use crate::store::Db;

/// Rows inserted per statement while filling.
const FILL_BATCH: i64 = 100_000;

pub async fn main(database_url: &str, rows: i64, searches: usize) -> anyhow::Result<bool> {
    create_database(database_url).await?;
    let db = Db::new(database_url, 2).context("the bench database")?;
    db.migrate().await.context("migrating the bench database")?;
    let c = db.client().await?;
    let have: i64 = c.query_one("SELECT count(*) FROM jobs", &[]).await?.get(0);
    if have < rows {
        let started = Instant::now();
        let mut from = have + 1;
        while from <= rows {
            let to = (from + FILL_BATCH - 1).min(rows);
            // Generated documents of 20 GSTINs over the last 90 days, each with a distinct IRN
            // (64 hex characters, as the IRP's).
            c.execute(
                "INSERT INTO jobs (id, doc_key, gstin, doc_type, doc_number, financial_year, doc_date, provider,
                                   status, attempts, irn, ack_no, updated_at, irp)
                 SELECT gen_random_uuid(), 'BENCH/' || g, '29AAGCP' || lpad((g % 20)::text, 4, '0') || 'K1Z3', 'INV',
                        'B' || g, '2026-27', to_char(now() - make_interval(days => (g % 90)::int), 'DD/MM/YYYY'),
                        'whitebooks', 'generated', 1, md5(g::text) || md5(('irn' || g)::text), g::text,
                        now() - make_interval(secs => (g % 7776000)::int), 'whitebooks'
                 FROM generate_series($1::bigint, $2::bigint) g",
                &[&from, &to],
            )
            .await?;
            eprintln!("filled {to} of {rows} job rows");
            from = to + 1;
        }
        c.batch_execute("ANALYZE jobs").await?;
        eprintln!("filled in {:.0?}", started.elapsed());
    }
    let total: i64 = c.query_one("SELECT count(*) FROM jobs", &[]).await?.get(0);
    let irns: Vec<String> = c
        .query("SELECT irn FROM jobs TABLESAMPLE SYSTEM (1) WHERE irn IS NOT NULL LIMIT $1", &[&(searches as i64)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    anyhow::ensure!(!irns.is_empty(), "no IRNs sampled");
    let mut times = Vec::with_capacity(irns.len());
    for irn in &irns {
        let s = Search { irn: Some(irn.clone()), ..Default::default() };
        let t = Instant::now();
        let found = db.search_jobs(&s, None, 51).await?;
        let n = db.count_jobs(&s, 10_000).await?;
        times.push(t.elapsed());
        anyhow::ensure!(found.len() == 1 && n == 1, "IRN {irn} found {} time(s)", found.len());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    let (sql, params) = Search { irn: Some(irns[0].clone()), ..Default::default() }.page_sql(None, 51);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
    let plan: Vec<String> =
        c.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &refs).await?.iter().map(|r| r.get(0)).collect();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!("console search by IRN among {total} job rows, {} searches (page + count)", times.len());
    println!("  p50 {}  p95 {}  p99 {}  max {}", ms(pct(0.5)), ms(pct(0.95)), ms(pct(0.99)), ms(pct(1.0)));
    println!("plan:\n  {}", plan.join("\n  "));
    let met = pct(0.95) < Duration::from_millis(100);
    println!("target p95 < 100 ms: {}", if met { "met" } else { "NOT met" });
    Ok(met)
}

/// Create the bench's database when it does not exist yet.
async fn create_database(database_url: &str) -> anyhow::Result<()> {
    let mut url = reqwest::Url::parse(database_url).context("--database-url is not a URL")?;
    let name = url.path().trim_start_matches('/').to_string();
    anyhow::ensure!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "database name '{name}': letters, digits and _ only"
    );
    url.set_path("/postgres");
    let (client, conn) = tokio_postgres::connect(url.as_str(), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some();
    if !exists {
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    }
    Ok(())
}
