//! A character-level vocabulary: how a client turns its prompt into token ids and generated ids back into text.
//!
//! The file is the `vocab.json` that `models/train_tiny_gpt.py` writes next to its model: `{"chars": ["\n", " ",
//! …], "unknown": 96}` — token `i` is `chars[i]`, and a character outside the list becomes the `unknown` id (a
//! vocabulary without one refuses it). The ids, not the text, are what proofs are about: a validator encodes the
//! prompt with its own copy of the file.

use std::path::Path;

use serde::Deserialize;

use crate::error::VerifyError;
use crate::key_dir::read_bounded;

/// The largest vocabulary file read.
const MAX_VOCAB_FILE_BYTES: u64 = 16 << 20;

/// What an id outside the vocabulary prints as.
const UNPRINTABLE: char = '\u{fffd}';

/// Token ids of single characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
    unknown: Option<i64>,
}

#[derive(Deserialize)]
struct VocabularyFile {
    chars: Vec<String>,
    #[serde(default)]
    unknown: Option<i64>,
}

impl Vocabulary {
    /// Reads a `vocab.json`.
    pub fn load(path: &Path) -> Result<Self, VerifyError> {
        let bytes = read_bounded(path, MAX_VOCAB_FILE_BYTES)?;
        let text = std::str::from_utf8(&bytes).map_err(|e| malformed(e).in_file(path))?;
        Self::from_json(text).map_err(|e| e.in_file(path))
    }

    /// Parses a `vocab.json`: every entry of `chars` one character, no character twice.
    pub fn from_json(text: &str) -> Result<Self, VerifyError> {
        let file: VocabularyFile = serde_json::from_str(text).map_err(malformed)?;
        let mut chars = Vec::with_capacity(file.chars.len());
        for (i, entry) in file.chars.iter().enumerate() {
            let mut it = entry.chars();
            match (it.next(), it.next()) {
                (Some(c), None) if !chars.contains(&c) => chars.push(c),
                (Some(_), None) => return Err(malformed(format!("chars[{i}] {entry:?} appears twice"))),
                _ => return Err(malformed(format!("chars[{i}] {entry:?} is not one character"))),
            }
        }
        Ok(Self {
            chars,
            unknown: file.unknown,
        })
    }

    /// The ids of `text`, one per character (the `unknown` id for a character outside the vocabulary).
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, VerifyError> {
        text.chars()
            .map(|c| match self.chars.iter().position(|&v| v == c) {
                Some(i) => Ok(i as i64),
                None => self.unknown.ok_or_else(|| VerifyError::InputValue {
                    reason: format!("the character {c:?} is not in the vocabulary, which has no unknown id"),
                }),
            })
            .collect()
    }

    /// The text of `ids` (U+FFFD for an id without a character, the unknown id among them).
    pub fn decode(&self, ids: &[i64]) -> String {
        ids.iter()
            .map(|&id| {
                usize::try_from(id)
                    .ok()
                    .and_then(|i| self.chars.get(i))
                    .copied()
                    .unwrap_or(UNPRINTABLE)
            })
            .collect()
    }
}

fn malformed(reason: impl ToString) -> VerifyError {
    VerifyError::Malformed {
        what: "vocabulary",
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_unknown_characters_map_to_the_unknown_id() {
        let v = Vocabulary::from_json(r#"{"chars": ["a", "b", " "], "unknown": 3}"#).unwrap();
        assert_eq!(v.encode("ab a").unwrap(), vec![0, 1, 2, 0]);
        assert_eq!(v.decode(&[1, 0, 2]), "ba ");
        assert_eq!(v.encode("az").unwrap(), vec![0, 3]);
        assert_eq!(v.decode(&[3, -1]), "\u{fffd}\u{fffd}");
        let strict = Vocabulary::from_json(r#"{"chars": ["a"]}"#).unwrap();
        assert!(strict.encode("z").unwrap_err().to_string().contains("'z'"));
    }

    #[test]
    fn malformed_vocabularies_are_refused() {
        for bad in [
            r#"{"chars": ["ab"]}"#,
            r#"{"chars": ["a", "a"]}"#,
            r#"{"chars": [""]}"#,
            "[]",
        ] {
            assert!(Vocabulary::from_json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_shipped_gpt_vocabulary_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-gpt/vocab.json");
        let v = Vocabulary::load(&path).unwrap();
        let ids = v.encode("def f(x):\n").unwrap();
        assert_eq!(v.decode(&ids), "def f(x):\n");
        assert!(ids.iter().all(|&id| (0..96).contains(&id)));
    }
}
