//! The framework ceiling for `make bench-load`: a pass-through Pingora proxy, as in Pingora's own
//! examples, on the same Pingora version as portcullis, with no authentication at all.
//!
//! `bare_pingora LISTEN UPSTREAM [TLS_LISTEN CERT KEY]` (addresses as `host:port`), one worker
//! thread. With the TLS arguments it also serves HTTPS, offering h2 and http/1.1 by ALPN, as
//! portcullis' TLS listeners do.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;

struct PassThrough {
    upstream: std::net::SocketAddr,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora LISTEN UPSTREAM [TLS_LISTEN CERT KEY]");
        std::process::exit(64);
    };
    let tls = match (args.next(), args.next(), args.next()) {
        (Some(address), Some(cert), Some(key)) => Some((address, cert, key)),
        (None, None, None) => None,
        _ => {
            eprintln!("usage: bare_pingora LISTEN UPSTREAM [TLS_LISTEN CERT KEY]");
            std::process::exit(64);
        }
    };
    let Ok(upstream) = upstream.parse() else {
        eprintln!("UPSTREAM must be host:port");
        std::process::exit(64);
    };
    let conf = pingora::server::configuration::ServerConf {
        threads: 1,
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy =
        pingora::proxy::http_proxy_service(&server.configuration, PassThrough { upstream });
    proxy.add_tcp(&listen);
    if let Some((address, cert, key)) = tls {
        let mut settings = match pingora::listeners::tls::TlsSettings::intermediate(&cert, &key) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("TLS: {e}");
                std::process::exit(1);
            }
        };
        settings.enable_h2();
        proxy.add_tls_with_settings(&address, None, settings);
    }
    server.add_service(proxy);
    server.run_forever();
}
