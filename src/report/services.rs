//! TCP service names by port, from the system's services database
//! (/etc/services, netbase on Debian): the table's SERVICE column and
//! nmap-xml's `<service>`, as nmap shows them (its own nmap-services is
//! not ours to ship). A port the database does not name shows "-".

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// Where the database is; `SYNSCOPE_SERVICES` overrides it (an empty or
/// missing file: no names).
const SYSTEM: &str = "/etc/services";

/// Port → the first name the database gives it for TCP.
#[derive(Debug, Default, Clone)]
pub struct Services {
    tcp: FxHashMap<u16, String>,
}

impl Services {
    /// Parses services(5): `name port/protocol [aliases...] [# comment]`.
    /// Lines that do not parse are skipped.
    pub fn parse(text: &str) -> Services {
        let mut tcp = FxHashMap::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let (Some(name), Some(spec)) = (words.next(), words.next()) else {
                continue;
            };
            let Some((port, proto)) = spec.split_once('/') else {
                continue;
            };
            if proto != "tcp" {
                continue;
            }
            if let Ok(port) = port.parse::<u16>() {
                tcp.entry(port).or_insert_with(|| name.to_string());
            }
        }
        Services { tcp }
    }

    pub fn tcp(&self, port: u16) -> Option<&str> {
        self.tcp.get(&port).map(String::as_str)
    }

    /// The system's database, read once (none if it cannot be read).
    pub fn system() -> &'static Services {
        static DB: OnceLock<Services> = OnceLock::new();
        DB.get_or_init(|| {
            let path = std::env::var_os("SYNSCOPE_SERVICES").unwrap_or_else(|| SYSTEM.into());
            std::fs::read_to_string(path)
                .map(|t| Services::parse(&t))
                .unwrap_or_default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcp_names_and_skips_the_rest() {
        let db = Services::parse(
            "# comment\n\
             tcpmux\t\t1/tcp\t\t\t# TCP port service multiplexer\n\
             http\t\t80/tcp\t\twww\t# WorldWideWeb HTTP\n\
             www-alt\t80/tcp\n\
             domain\t\t53/udp\n\
             broken line\n\
             bad\t99999/tcp\n\
             https 443/tcp # http protocol over TLS/SSL\n",
        );
        assert_eq!(db.tcp(80), Some("http"), "the first name wins");
        assert_eq!(db.tcp(443), Some("https"));
        assert_eq!(db.tcp(1), Some("tcpmux"));
        assert_eq!(db.tcp(53), None, "udp only");
        assert_eq!(db.tcp(8081), None);
    }
}
