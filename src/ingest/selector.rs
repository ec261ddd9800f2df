//! Metric selectors: `name` or `name{tag:value,tag}` as written in the config.
//! A selector matches a StatsD line with that exact name whose DogStatsD tags
//! include every listed tag (with the listed value, when one is given).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSelector {
    pub name: String,
    /// Required tags: (key, value); `None` means the bare tag must be present.
    pub tags: Vec<(String, Option<String>)>,
}

impl MetricSelector {
    pub fn parse(text: &str) -> Result<MetricSelector, String> {
        let text = text.trim();
        let (name, tags) = match text.find('{') {
            Some(open) => {
                let Some(inner) = text[open + 1..].strip_suffix('}') else {
                    return Err(format!("selector {text:?}: missing closing '}}'"));
                };
                (&text[..open], Some(inner))
            }
            None => (text, None),
        };
        if name.is_empty() {
            return Err(format!("selector {text:?}: empty metric name"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| matches!(c, ':' | '|' | '@' | '#' | ',' | '}') || c.is_whitespace())
        {
            return Err(format!("selector {text:?}: metric name contains {bad:?}"));
        }
        let mut parsed = Vec::new();
        if let Some(inner) = tags {
            for tag in inner.split(',') {
                let tag = tag.trim();
                if tag.is_empty() {
                    return Err(format!("selector {text:?}: empty tag"));
                }
                match tag.split_once(':') {
                    Some((k, v)) if !k.is_empty() => {
                        parsed.push((k.to_string(), Some(v.to_string())))
                    }
                    Some(_) => return Err(format!("selector {text:?}: tag {tag:?} has no key")),
                    None => parsed.push((tag.to_string(), None)),
                }
            }
        }
        Ok(MetricSelector {
            name: name.to_string(),
            tags: parsed,
        })
    }

    /// Whether a line's raw DogStatsD tag list (`a:1,b:2,c`) satisfies this selector.
    pub fn tags_match(&self, raw_tags: &str) -> bool {
        self.tags.iter().all(|(key, want)| {
            raw_tags.split(',').any(|t| match t.split_once(':') {
                Some((k, v)) => k == key && want.as_deref().is_none_or(|w| w == v),
                None => t == key && want.is_none(),
            })
        })
    }
}

impl std::fmt::Display for MetricSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if !self.tags.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.tags.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                match v {
                    Some(v) => write!(f, "{k}:{v}")?,
                    None => f.write_str(k)?,
                }
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name() {
        let s = MetricSelector::parse("http.requests").unwrap();
        assert_eq!(s.name, "http.requests");
        assert!(s.tags.is_empty());
        assert!(s.tags_match(""));
        assert!(s.tags_match("env:prod"));
    }

    #[test]
    fn tags_must_all_match() {
        let s = MetricSelector::parse("ddb.consumed{table:posts,op:write}").unwrap();
        assert_eq!(s.to_string(), "ddb.consumed{table:posts,op:write}");
        assert!(s.tags_match("op:write,env:prod,table:posts"));
        assert!(!s.tags_match("op:read,table:posts"));
        assert!(!s.tags_match("table:posts"));
        assert!(!s.tags_match(""));
    }

    #[test]
    fn bare_tag() {
        let s = MetricSelector::parse("x{canary}").unwrap();
        assert!(s.tags_match("canary,env:prod"));
        // A bare tag in a selector asks only that the key be present.
        assert!(s.tags_match("canary:yes"));
        assert!(!s.tags_match("env:prod"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "{a:b}", "x{a:b", "x{}", "na me", "x|c", "x{:v}"] {
            assert!(
                MetricSelector::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
