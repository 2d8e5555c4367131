//! The HTTP routes (router without a socket), metric names and labels
//! against docs/metrics.md, the cardinality guard and series removal,
//! fed by the real engine on the example traffic.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use cxpulse::config::Config;
use cxpulse::engine::kpi::Kpi;
use cxpulse::event::{Body as EventBody, Event};
use cxpulse::metrics::{Metrics, MetricsSettings};
use cxpulse::replay::replay_lines;
use cxpulse::time::MICROS_PER_SEC;
use http_body_util::BodyExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use tower::ServiceExt;

const NOW: i64 = 1_800_000_000 * MICROS_PER_SEC;

/// Metrics fed with every record of a replay of examples/events.jsonl.
fn fed(settings: MetricsSettings) -> (Arc<Metrics>, usize) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/events.jsonl"
    ))
    .unwrap();
    let out = replay_lines(&Config::default(), text.lines().map(str::as_bytes)).unwrap();
    let m = Arc::new(Metrics::new(&settings));
    m.observe_records(&out.records, NOW);
    (m, out.records.len())
}

async fn get(m: &Arc<Metrics>, uri: &str) -> (StatusCode, String, Option<String>) {
    let resp = cxpulse::http::router(m.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), ctype)
}

#[tokio::test]
async fn health_and_readiness() {
    let m = Arc::new(Metrics::default());
    assert_eq!(get(&m, "/healthz").await.0, StatusCode::OK);
    let (status, body, _) = get(&m, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("no input partitions"), "{body}");
    // Assigned but the lag is not known yet, then too high: still catching up.
    m.update_readiness(4, -1);
    assert_eq!(get(&m, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    m.update_readiness(4, 50_000);
    let (status, body, _) = get(&m, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("50000"), "{body}");
    // Caught up once: ready, and a later burst of lag does not flap it.
    m.update_readiness(4, 10);
    assert_eq!(get(&m, "/readyz").await.0, StatusCode::OK);
    m.update_readiness(4, 50_000);
    assert_eq!(get(&m, "/readyz").await.0, StatusCode::OK);
    // Every partition revoked: not ready.
    m.update_readiness(0, 0);
    assert_eq!(get(&m, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(m.encode(NOW).contains("cxpulse_ready 0"));
    assert_eq!(get(&m, "/nope").await.0, StatusCode::NOT_FOUND);
}

/// Every metric name docs/metrics.md promises is exported, and every KPI
/// has its families.
#[tokio::test]
async fn metrics_match_the_documented_names() {
    let (m, _) = fed(MetricsSettings::default());
    // Exercise the processing-time and pipeline paths once.
    let ev = Event {
        id: 1,
        ts: NOW,
        region: Default::default(),
        channel: Default::default(),
        body: EventBody::CheckoutCompleted {
            checkout: 7,
            value: 12.5,
        },
    };
    m.observe_event("cx.checkouts", &ev);
    let survey = Event {
        body: EventBody::SurveySubmitted {
            survey: cxpulse::event::SurveyKind::Csat,
            score: 5,
            agent: Default::default(),
        },
        ..ev
    };
    m.observe_event("cx.surveys", &survey);
    m.messages_consumed.with_label_values(&["cx.surveys"]).inc();
    m.messages_redelivered
        .with_label_values(&["cx.surveys"])
        .inc();
    m.observe_samples(&[(Kpi::ChatWaitTime, 42.0), (Kpi::FirstReplyTime, 600.0)]);
    m.observe_invalid("cx.chats", "not_json");
    m.set_partition("cx.chats", 0, Some(NOW), false);
    m.set_consumer_lag("cx.chats", 0, 3);
    m.set_watermark(NOW, NOW + 5 * MICROS_PER_SEC);
    m.processing_latency.observe(0.002);
    let (status, text, ctype) = get(&m, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.unwrap().starts_with("text/plain; version=0.0.4"));

    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md")).unwrap();
    let mut documented = BTreeSet::new();
    for piece in doc.split('`').skip(1).step_by(2) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with("cxpulse_")
            && !piece[name.len()..].starts_with('<')
            && !name.ends_with('_')
        {
            documented.insert(name);
        }
    }
    assert!(documented.len() > 30, "{documented:?}");
    for name in &documented {
        assert!(
            exported.contains(name.as_str()),
            "documented {name} is not exported"
        );
    }
    for kpi in Kpi::ALL {
        let base = format!("cxpulse_kpi_{}", kpi.name());
        assert!(exported.contains(base.as_str()), "{base}");
        assert!(
            exported.contains(format!("{base}_count").as_str()),
            "{base}_count"
        );
    }
    for name in &exported {
        if name.starts_with("cxpulse_kpi_") && !documented.contains(*name) {
            let kpi_family = Kpi::ALL.iter().any(|k| {
                let base = format!("cxpulse_kpi_{}", k.name());
                name.strip_prefix(base.as_str()).is_some_and(|rest| {
                    ["", "_count", "_numerator", "_sum", "_mean"].contains(&rest)
                })
            });
            assert!(kpi_family, "{name} is exported but not documented");
        }
    }

    // Labels: window, grouping, the group's dimensions; quantiles for
    // distributions.
    assert!(text.contains("cxpulse_kpi_csat_rate{window=\"1h\",grouping=\"overall\"}"));
    assert!(text.contains("grouping=\"channel\",channel=\"chat\"}"));
    assert!(text.contains("cxpulse_kpi_chat_wait_time_seconds{window=\"5m\",grouping=\"region\",region=\"eu\",quantile=\"0.9\"}"));
    assert!(text.contains("cxpulse_chat_wait_seconds_bucket{le=\"60\"} 1"));
    assert!(text.contains("cxpulse_revenue_total 12.5"));
    assert!(text.contains("cxpulse_events_invalid_total{reason=\"not_json\",topic=\"cx.chats\"} 1"));
    assert!(text.contains("cxpulse_watermark_lag_seconds 5"));
}

#[tokio::test]
async fn api_kpis_filters_rows() {
    let (m, records) = fed(MetricsSettings::default());
    assert!(records > 100);
    let (status, body, _) = get(&m, "/api/kpis").await;
    assert_eq!(status, StatusCode::OK);
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    let n = all["count"].as_u64().unwrap();
    assert_eq!(all["rows"].as_array().unwrap().len() as u64, n);
    assert!(
        n > 0 && (n as usize) < records,
        "one row per key, not per record"
    );

    let (_, body, _) = get(&m, "/api/kpis?kpi=csat_rate&window=1h&grouping=channel").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for r in rows {
        assert_eq!(r["kpi"], "csat_rate");
        assert_eq!(r["window"], "1h");
        assert!(r["group"]["channel"].is_string());
        assert!(r["key"]
            .as_str()
            .unwrap()
            .starts_with("csat_rate|1h|channel="));
        assert!(r["numerator"].is_u64() && r["updated_at"].is_string());
    }
    let (_, body, _) = get(&m, "/api/kpis?region=eu&kpi=chats_requested").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    for r in v["rows"].as_array().unwrap() {
        assert_eq!(r["group"]["region"], "eu");
    }
    assert!(
        v["count"].as_u64().unwrap() >= 3,
        "one per window size: {body}"
    );

    let (status, body, _) = get(&m, "/api/kpis?kpi=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown kpi"));
    let (status, body, _) = get(&m, "/api/kpis?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("colour"));
}

/// With 2 values per dimension, the rest of the agents are one `other`
/// series per KPI and window; expiry removes rows after the TTL but the
/// counters keep counting.
#[tokio::test]
async fn cardinality_guard_and_series_expiry() {
    let ttl = 60 * MICROS_PER_SEC;
    let (m, _) = fed(MetricsSettings {
        max_values_per_dimension: 2,
        series_ttl: ttl,
        ready_max_lag: 0,
    });
    let text = m.encode(NOW);
    let agents: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("cxpulse_kpi_csat_rate{"))
        .filter_map(|l| l.split("agent_id=\"").nth(1))
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert!(agents.contains("other"), "{agents:?}");
    assert_eq!(agents.len(), 3, "two admitted agents and other: {agents:?}");
    let overflow: f64 = text
        .lines()
        .filter(|l| l.starts_with("cxpulse_kpi_label_overflow_total{dimension=\"agent_id\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(overflow > 0.0);
    let overflow_all = metric(&text, "cxpulse_kpi_label_overflow_total");
    // No quantiles for `other`, but its mean, sum and count are there.
    assert!(!text
        .lines()
        .any(|l| l.starts_with("cxpulse_kpi_chat_wait_time_seconds{")
            && l.contains("agent_id=\"other\"")
            && l.contains("quantile")));
    assert!(text.lines().any(
        |l| l.starts_with("cxpulse_kpi_chat_wait_time_seconds_mean{")
            && l.contains("agent_id=\"other\"")
    ));

    // After the TTL every row is gone; counters stay.
    let emitted_before = metric(&text, "cxpulse_kpi_records_emitted_total");
    let later = m.encode(NOW + ttl);
    assert!(!later
        .lines()
        .any(|l| l.starts_with("cxpulse_kpi_csat_rate{")));
    assert_eq!(metric(&later, "cxpulse_kpi_series"), 0.0);
    assert!(metric(&later, "cxpulse_kpi_series_expired_total") > 0.0);
    assert_eq!(
        metric(&later, "cxpulse_kpi_records_emitted_total"),
        emitted_before
    );
    assert_eq!(
        metric(&later, "cxpulse_kpi_label_overflow_total"),
        overflow_all
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(name))
        .filter(|l| l[name.len()..].starts_with([' ', '{']))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}
