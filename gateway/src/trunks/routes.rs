//! Outbound routing: the longest matching prefix of an E.164 number picks an ordered list of
//! trunks to try.

use crate::config::{E164, RouteConfig, TrunkName};

/// The routes, searched by longest prefix.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// (prefix digits, trunks), sorted by descending prefix length: the first match is the
    /// longest.
    routes: Vec<(String, Vec<TrunkName>)>,
}

impl RouteTable {
    /// A table from the configured routes (validated at load: every trunk exists).
    pub fn new(routes: &[RouteConfig]) -> Self {
        let mut routes: Vec<_> = routes
            .iter()
            .map(|r| (r.prefix.as_str().to_owned(), r.trunks.clone()))
            .collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        RouteTable { routes }
    }

    /// The trunks for `number`, in the order to try them; empty when no route matches.
    pub fn lookup(&self, number: &E164) -> &[TrunkName] {
        self.routes
            .iter()
            .find(|(prefix, _)| number.digits().starts_with(prefix.as_str()))
            .map(|(_, trunks)| trunks.as_slice())
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &[&str])]) -> RouteTable {
        let toml: String = routes
            .iter()
            .map(|(prefix, trunks)| {
                let names: Vec<String> = trunks.iter().map(|t| format!("\"{t}\"")).collect();
                format!(
                    "[[routes]]\nprefix = \"{prefix}\"\ntrunks = [{}]\n",
                    names.join(", ")
                )
            })
            .collect();
        #[derive(serde::Deserialize)]
        struct Routes {
            routes: Vec<RouteConfig>,
        }
        let parsed: Routes = toml_parse(&toml);
        RouteTable::new(&parsed.routes)
    }

    fn toml_parse<T: serde::de::DeserializeOwned>(text: &str) -> T {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .expect("test routes parse")
    }

    fn lookup(table: &RouteTable, number: &str) -> Vec<String> {
        let number: E164 = number.parse().expect("test number");
        table
            .lookup(&number)
            .iter()
            .map(|t| t.as_str().to_owned())
            .collect()
    }

    #[test]
    fn longest_prefix_wins_and_default_catches_the_rest() {
        let t = table(&[
            ("", &["default"]),
            ("44", &["uk-a", "uk-b"]),
            ("447", &["uk-mobile"]),
        ]);
        assert_eq!(lookup(&t, "+447700900123"), vec!["uk-mobile"]);
        assert_eq!(lookup(&t, "+442079460018"), vec!["uk-a", "uk-b"]);
        assert_eq!(lookup(&t, "+12125550187"), vec!["default"]);
        let none = table(&[("33", &["fr"])]);
        assert!(lookup(&none, "+12125550187").is_empty());
    }
}
