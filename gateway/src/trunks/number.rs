//! Phone numbers: what a user dialled, normalised to E.164 with the user's country, and the
//! E.164 number written the way a trunk wants it.

use std::fmt;

/// A number in E.164 form: a country code and subscriber number, 8 to 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Why a dialled string is not a callable number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Characters other than digits, `+` and visual separators.
    #[error("`{0}` contains characters that are not digits")]
    NotDigits(String),
    /// Too short or too long for E.164 once normalised.
    #[error("`{0}` is not a valid phone number length (E.164 numbers have 8 to 15 digits)")]
    BadLength(String),
}

impl E164 {
    /// Parses a number already in E.164 form (`+` and digits).
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        let digits = text
            .strip_prefix('+')
            .ok_or_else(|| NumberError::NotDigits(text.to_owned()))?;
        Self::from_digits(digits, text)
    }

    fn from_digits(digits: &str, original: &str) -> Result<Self, NumberError> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NumberError::NotDigits(original.to_owned()));
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(NumberError::BadLength(original.to_owned()));
        }
        Ok(E164(format!("+{digits}")))
    }

    /// The digits, without the `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The number with its `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalises what a user dialled to E.164, using the user's country calling code.
///
/// Accepts `+` numbers, the international prefixes `00` (and `011` in the North American plan),
/// national numbers with the trunk prefix `0`, and, in the North American plan, 10-digit and
/// `1`-prefixed 11-digit numbers. Spaces, dashes, dots and brackets are ignored.
pub fn normalize_dialled(dialled: &str, country: &str) -> Result<E164, NumberError> {
    let cleaned: String = dialled
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '/'))
        .collect();
    if let Some(rest) = cleaned.strip_prefix('+') {
        return E164::from_digits(rest, dialled);
    }
    if !cleaned.bytes().all(|b| b.is_ascii_digit()) || cleaned.is_empty() {
        return Err(NumberError::NotDigits(dialled.to_owned()));
    }
    let nanp = country == "1";
    let international = if nanp { "011" } else { "00" };
    if let Some(rest) = cleaned.strip_prefix(international) {
        return E164::from_digits(rest, dialled);
    }
    if nanp {
        return match cleaned.len() {
            10 => E164::from_digits(&format!("1{cleaned}"), dialled),
            11 if cleaned.starts_with('1') => E164::from_digits(&cleaned, dialled),
            _ => Err(NumberError::BadLength(dialled.to_owned())),
        };
    }
    let national = cleaned.strip_prefix('0').unwrap_or(&cleaned);
    E164::from_digits(&format!("{country}{national}"), dialled)
}

/// How a trunk wants numbers written in its Request-URI and To.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberFormat {
    /// `+442071234567`.
    E164,
    /// `442071234567`.
    E164NoPlus,
    /// `02071234567` for the trunk's own country, `00…` (or `011…`) international otherwise.
    National,
}

/// Writes `number` for a trunk in `format`, after its tech prefix (if any).
pub fn format_for_trunk(
    number: &E164,
    format: NumberFormat,
    trunk_country: &str,
    tech_prefix: &str,
) -> String {
    let body = match format {
        NumberFormat::E164 => number.as_str().to_owned(),
        NumberFormat::E164NoPlus => number.digits().to_owned(),
        NumberFormat::National => match number.digits().strip_prefix(trunk_country) {
            Some(national) if trunk_country == "1" => national.to_owned(),
            Some(national) => format!("0{national}"),
            None if trunk_country == "1" => format!("011{}", number.digits()),
            None => format!("00{}", number.digits()),
        },
    };
    format!("{tech_prefix}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(text: &str) -> E164 {
        E164::parse(text).unwrap()
    }

    #[test]
    fn normalises_what_people_dial() {
        let cases = [
            ("+44 20 7946 0018", "44", "+442079460018"),
            ("020 7946 0018", "44", "+442079460018"),
            ("0044 20 7946 0018", "44", "+442079460018"),
            ("(212) 555-0187", "1", "+12125550187"),
            ("1-212-555-0187", "1", "+12125550187"),
            ("011 44 20 7946 0018", "1", "+442079460018"),
            ("06 12 34 56 78", "33", "+33612345678"),
            ("+4915112345678", "33", "+4915112345678"),
        ];
        for (dialled, country, expected) in cases {
            assert_eq!(
                normalize_dialled(dialled, country).unwrap(),
                e164(expected),
                "{dialled}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        assert!(matches!(
            normalize_dialled("alice", "44"),
            Err(NumberError::NotDigits(_))
        ));
        assert!(matches!(
            normalize_dialled("+44 20", "44"),
            Err(NumberError::BadLength(_))
        ));
        assert!(matches!(
            normalize_dialled("555-0187", "1"),
            Err(NumberError::BadLength(_))
        ));
        assert!(matches!(
            normalize_dialled("+1234567890123456", "1"),
            Err(NumberError::BadLength(_))
        ));
        assert!(matches!(
            normalize_dialled("", "1"),
            Err(NumberError::NotDigits(_))
        ));
        assert!(E164::parse("442079460018").is_err());
    }

    #[test]
    fn formats_for_each_kind_of_trunk() {
        let london = e164("+442079460018");
        assert_eq!(
            format_for_trunk(&london, NumberFormat::E164, "44", ""),
            "+442079460018"
        );
        assert_eq!(
            format_for_trunk(&london, NumberFormat::E164NoPlus, "44", "99#"),
            "99#442079460018"
        );
        assert_eq!(
            format_for_trunk(&london, NumberFormat::National, "44", ""),
            "02079460018"
        );
        assert_eq!(
            format_for_trunk(&london, NumberFormat::National, "33", ""),
            "00442079460018"
        );
        let nyc = e164("+12125550187");
        assert_eq!(
            format_for_trunk(&nyc, NumberFormat::National, "1", ""),
            "2125550187"
        );
        assert_eq!(
            format_for_trunk(&london, NumberFormat::National, "1", ""),
            "011442079460018"
        );
    }
}
