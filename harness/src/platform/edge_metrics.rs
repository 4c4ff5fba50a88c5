//! The edge exporter's answer, one parser for every platform: mtail (running beside nginx, on the
//! local platform as a process and on Kubernetes in the ingress pod) keeps
//! `ingress_http_requests_total{status, made_by}`; the harness reads its `/json` at phase
//! boundaries (locally over loopback, on Kubernetes through the API server's pod proxy) into
//! [`EdgeCount`]s.

use crate::evidence::{EdgeCount, Layer};
use serde::Deserialize;

/// The counter the edge program keeps, by (status, made_by).
pub const REQUESTS: &str = "ingress_http_requests_total";

#[derive(Deserialize)]
struct Metric {
    #[serde(rename = "Keys", default)]
    keys: Vec<String>,
    #[serde(rename = "LabelValues", default)]
    values: Vec<LabelValue>,
}

#[derive(Deserialize)]
struct LabelValue {
    #[serde(rename = "Labels", default)]
    labels: Vec<String>,
    #[serde(rename = "Value")]
    value: Value,
}

#[derive(Deserialize)]
struct Value {
    #[serde(rename = "Value")]
    value: f64,
}

/// The request counters in mtail's `/json` answer.
pub fn counts_from_json(body: &[u8]) -> std::result::Result<Vec<EdgeCount>, String> {
    // Other metrics (the histogram) have values of another shape: pick ours first.
    let metrics: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(m) = metrics.into_iter().find(|m| m["Name"] == REQUESTS) else {
        return Ok(Vec::new());
    };
    let m: Metric = serde_json::from_value(m).map_err(|e| e.to_string())?;
    let status_at = m.keys.iter().position(|k| k == "status");
    let made_by_at = m.keys.iter().position(|k| k == "made_by");
    let (Some(s), Some(b)) = (status_at, made_by_at) else {
        return Err(format!("{REQUESTS} has keys {:?}", m.keys));
    };
    let mut out = Vec::new();
    for lv in m.values {
        let status = lv
            .labels
            .get(s)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| format!("{REQUESTS}: bad status in {:?}", lv.labels))?;
        let layer = match lv.labels.get(b).map(String::as_str) {
            Some("ingress") => Layer::Ingress,
            Some("upstream") => Layer::App,
            _ => return Err(format!("{REQUESTS}: bad made_by in {:?}", lv.labels)),
        };
        out.push(EdgeCount {
            status,
            layer,
            answers: lv.value.value as u64,
        });
    }
    out.sort_by_key(|c| (c.status, c.layer as u8));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_request_counters_from_mtail_json() {
        let body = br#"[
          {"Name":"ingress_http_requests_total","Keys":["status","made_by"],
           "LabelValues":[{"Labels":["504","ingress"],"Value":{"Value":3,"Time":1}},
                          {"Labels":["200","upstream"],"Value":{"Value":40,"Time":1}}]},
          {"Name":"ingress_http_request_duration_seconds","Keys":["made_by"],
           "LabelValues":[{"Labels":["ingress"],"Value":{"Buckets":[1,2],"Count":3,"Sum":15.0}}]}
        ]"#;
        let c = counts_from_json(body).unwrap();
        assert_eq!(
            c,
            vec![
                EdgeCount {
                    status: 200,
                    layer: Layer::App,
                    answers: 40
                },
                EdgeCount {
                    status: 504,
                    layer: Layer::Ingress,
                    answers: 3
                }
            ]
        );
        // Before the first line the counter has no values.
        assert!(counts_from_json(
            br#"[{"Name":"ingress_http_requests_total","Keys":["status","made_by"]}]"#
        )
        .unwrap()
        .is_empty());
        // A program with other keys is an error, not zero answers.
        assert!(counts_from_json(
            br#"[{"Name":"ingress_http_requests_total","Keys":["code"],"LabelValues":[{"Labels":["200"],"Value":{"Value":1}}]}]"#
        )
        .is_err());
    }
}
