//! Minimal `{{name}}` substitution for the real proxies' configuration templates.

/// Replaces every `{{key}}` in `template` with its value; an unknown placeholder is an error
/// so a typo in a template cannot silently produce a broken configuration.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "unclosed `{{` in template".to_string())?;
        let key = after[..end].trim();
        let value = vars
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| format!("template placeholder `{key}` has no value"))?;
        out.push_str(&value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn substitutes_and_rejects_unknown_keys() {
        let vars = [("port", "8443".to_string())];
        assert_eq!(render("listen {{ port }};", &vars).unwrap(), "listen 8443;");
        assert!(render("{{nope}}", &vars).unwrap_err().contains("nope"));
        assert!(render("{{port", &vars).is_err());
    }
}
