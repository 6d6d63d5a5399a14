//! The PyTorch module a node was exported from: the dynamo exporter's
//! `pkg.torch.onnx.name_scopes` metadata (`['', 'layer2', 'layer2.relu', 'relu_4']`), else the
//! legacy exporter's node name (`/layer2/relu_1/Relu`).

use super::graph::Node;
use std::collections::HashSet;

/// The module paths of a node's scope, outermost first (`["layer2", "layer2.relu"]`), from
/// its metadata; `None` when the node has none.
pub(crate) fn from_metadata(node: &Node) -> Option<Vec<String>> {
    let (_, value) = node
        .metadata
        .iter()
        .find(|(k, _)| k == "pkg.torch.onnx.name_scopes")?;
    let names = parse_list(value)?;
    // The root module (''), the nested modules' paths, then the operation's own name.
    Some(names.get(1..names.len().saturating_sub(1))?.to_vec())
}

/// The module paths of a legacy node name: `/stem/stem.0/Conv` -> `["stem", "stem.0"]`,
/// `/layer2/relu_1/Relu` -> `["layer2", "layer2.relu"]` when `layer2.relu` was seen before
/// (the `_1` counts a module's second call). `seen` collects the paths met so far.
pub(crate) fn from_legacy_name(name: &str, seen: &mut HashSet<String>) -> Vec<String> {
    let trimmed = name.strip_prefix('/').unwrap_or(name);
    let parts: Vec<&str> = trimmed.split('/').collect();
    let mut paths: Vec<String> = vec![];
    for part in &parts[..parts.len().saturating_sub(1)] {
        let parent = paths.last().cloned().unwrap_or_default();
        // A container's children are named after it: `stem.0` in `stem`, `mlp.0` in `blocks.0.mlp`.
        let last = parent.rsplit('.').next().unwrap_or_default();
        let mut path = match part.strip_prefix(last).filter(|r| r.starts_with('.')) {
            _ if parent.is_empty() => part.to_string(),
            Some(rest) if !last.is_empty() => format!("{parent}{rest}"),
            _ => format!("{parent}.{part}"),
        };
        if let Some((base, count)) = path.rsplit_once('_')
            && !count.is_empty()
            && count.bytes().all(|b| b.is_ascii_digit())
            && seen.contains(base)
        {
            path = base.to_string();
        }
        seen.insert(path.clone());
        paths.push(path);
    }
    paths
}

/// A Python list of string literals, as the exporter writes it.
fn parse_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = vec![];
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(quote) = chars.next() else { break };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut s = String::new();
        loop {
            match chars.next()? {
                '\\' => s.push(chars.next()?),
                c if c == quote => break,
                c => s.push(c),
            }
        }
        out.push(s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lists_parse() {
        assert_eq!(
            parse_list("['', 'layer2', \"a.b\", 'it\\'s']").unwrap(),
            ["", "layer2", "a.b", "it's"]
        );
        assert_eq!(parse_list("[]").unwrap(), Vec::<String>::new());
        assert!(parse_list("layer2").is_none());
    }

    #[test]
    fn legacy_names_give_module_paths() {
        let mut seen = HashSet::new();
        assert_eq!(
            from_legacy_name("/stem/stem.0/Conv", &mut seen),
            ["stem", "stem.0"]
        );
        assert_eq!(
            from_legacy_name("/layer2/relu/Relu", &mut seen),
            ["layer2", "layer2.relu"]
        );
        assert_eq!(
            from_legacy_name("/layer2/relu_1/Relu", &mut seen),
            ["layer2", "layer2.relu"]
        );
        assert_eq!(
            from_legacy_name("/blocks/blocks.0/norm1/Sub", &mut seen),
            ["blocks", "blocks.0", "blocks.0.norm1"]
        );
        assert_eq!(
            from_legacy_name("/blocks/blocks.0/mlp/mlp.0/MatMul", &mut seen),
            ["blocks", "blocks.0", "blocks.0.mlp", "blocks.0.mlp.0"]
        );
        assert_eq!(
            from_legacy_name("/Flatten", &mut seen),
            Vec::<String>::new()
        );
        // A module genuinely named `act_1` keeps its name when `act` was never seen.
        assert_eq!(from_legacy_name("/act_1/Relu", &mut seen), ["act_1"]);
    }
}
