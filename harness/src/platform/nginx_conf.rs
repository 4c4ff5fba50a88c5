//! The ingress's nginx configuration, one for every platform: the same retries, timeouts,
//! attribution headers (who answered) and edge log (who made each answer) whether nginx runs as a
//! local process or as a Deployment in front of a Kubernetes Service. Only the file layout, the
//! listen address and where the upstream block comes from differ. The edge exporter's program
//! ([`EDGE_PROGRAM`]) is shared the same way.

use crate::spec::IngressSpec;

/// The edge exporter's program (mtail) on the edge log: `ingress_http_requests_total{status,
/// made_by}` and `ingress_http_request_duration_seconds{made_by}`.
pub const EDGE_PROGRAM: &str = include_str!("ingress.mtail");

/// Where this nginx keeps its files and listens.
pub struct Layout {
    /// `user root;` (a local run as root: workers must reach the run's files).
    pub run_as_root: bool,
    pub pid: String,
    pub error_log: String,
    pub access_log: String,
    /// One line per answer (`status=… made_by=… request_time=…`), for the edge exporter (mtail).
    pub edge_log: String,
    pub temp_dir: String,
    /// A file defining `upstream backend` and the `$brownout_no_endpoints` map.
    pub upstreams: String,
    pub listen: String,
}

/// nginx's form of a duration: milliseconds.
fn nginx_time(d: crate::spec::Dur) -> String {
    format!("{}ms", d.ms())
}

/// The whole `nginx.conf`.
pub fn render(layout: &Layout, spec: &IngressSpec) -> String {
    let Layout {
        pid,
        error_log,
        access_log,
        edge_log,
        temp_dir: t,
        upstreams,
        listen,
        ..
    } = layout;
    let user = if layout.run_as_root {
        "user root;\n"
    } else {
        ""
    };
    format!(
        r#"# Written by brownout for one run.
{user}worker_processes 1;
pid {pid};
error_log {error_log} warn;
events {{ worker_connections 4096; }}
http {{
    log_format brownout '$msec $status $request_time "$request" request_id=$http_x_request_id upstream=$upstream_addr upstream_status=$upstream_status upstream_header_time=$upstream_header_time';
    access_log {access_log} brownout;
    # Who made each answer, for the edge metrics: the ingress itself when no upstream sent a
    # response header (its own 502/503/504), else the upstream.
    map $upstream_header_time $brownout_made_by {{
        ""       ingress;
        "-"      ingress;
        "~-$"    ingress;
        default  upstream;
    }}
    # One line per answer, read as it is written by the edge exporter (mtail).
    log_format brownout_edge 'status=$status made_by=$brownout_made_by request_time=$request_time';
    access_log {edge_log} brownout_edge;
    client_body_temp_path {t}/client;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    include {upstreams};
    server {{
        listen {listen};
        location / {{
            if ($brownout_no_endpoints) {{{no_endpoints_header} return 503; }}
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_connect_timeout {connect};
            proxy_read_timeout {read};
            proxy_send_timeout {read};
            proxy_next_upstream {retries};
            proxy_set_header X-Request-Id $http_x_request_id;
            # Who answered: the upstream the ingress proxied to, and its header time ("-" when
            # the ingress made the answer itself). The app cannot forge them.
            proxy_hide_header {addr_header};
            proxy_hide_header {time_header};
            add_header {addr_header} $upstream_addr always;
            add_header {time_header} $upstream_header_time always;
        }}
    }}
}}
"#,
        // The ingress's own 503 (no replica ready), with Retry-After if the system sets one.
        no_endpoints_header = spec
            .no_endpoints_retry_after
            .map(|d| format!(
                " add_header Retry-After {} always;",
                d.get().as_secs().max(1)
            ))
            .unwrap_or_default(),
        connect = nginx_time(spec.connect_timeout),
        read = nginx_time(spec.read_timeout),
        retries = spec.retries,
        addr_header = crate::load::UPSTREAM_ADDR_HEADER,
        time_header = crate::load::UPSTREAM_HEADER_TIME_HEADER,
    )
}

/// An upstreams file routing to `servers` (`host:port`); none: the ingress answers 503 itself.
pub fn upstreams(servers: &[String]) -> String {
    if servers.is_empty() {
        // nginx needs a server in an upstream block; the `if` answers 503 before it is used.
        "upstream backend { server 127.0.0.1:9 down; }\nmap $host $brownout_no_endpoints { default 1; }\n".into()
    } else {
        let servers: String = servers
            .iter()
            .map(|a| format!("    server {a} max_fails=0;\n"))
            .collect();
        format!(
            "upstream backend {{\n{servers}}}\nmap $host $brownout_no_endpoints {{ default 0; }}\n"
        )
    }
}
