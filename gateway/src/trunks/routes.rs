//! Outbound routing: the longest matching prefix of an E.164 number picks an ordered list of
//! trunks to try.

use super::number::E164;

/// A route: numbers starting with `prefix` (E.164 digits, no `+`; empty matches all) go to
/// `trunks`, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Leading digits of the E.164 number.
    pub prefix: String,
    /// Trunk names in the order to try them.
    pub trunks: Vec<String>,
}

/// The routes, searched by longest prefix.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Sorted by descending prefix length, so the first match is the longest.
    routes: Vec<Route>,
}

impl RouteTable {
    /// A table from configured routes (validated elsewhere: every trunk exists).
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()));
        RouteTable { routes }
    }

    /// The trunks for `number`, in order; empty when no route matches.
    pub fn lookup(&self, number: &E164) -> &[String] {
        self.routes
            .iter()
            .find(|r| number.digits().starts_with(&r.prefix))
            .map(|r| r.trunks.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, trunks: &[&str]) -> Route {
        Route {
            prefix: prefix.into(),
            trunks: trunks.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn longest_prefix_wins_and_default_catches_the_rest() {
        let table = RouteTable::new(vec![
            route("", &["default"]),
            route("44", &["uk-a", "uk-b"]),
            route("447", &["uk-mobile"]),
        ]);
        let lookup = |n: &str| table.lookup(&E164::parse(n).unwrap()).to_vec();
        assert_eq!(lookup("+447700900123"), vec!["uk-mobile"]);
        assert_eq!(lookup("+442079460018"), vec!["uk-a", "uk-b"]);
        assert_eq!(lookup("+12125550187"), vec!["default"]);
        assert!(
            RouteTable::new(vec![route("33", &["fr"])])
                .lookup(&E164::parse("+12125550187").unwrap())
                .is_empty()
        );
    }
}
