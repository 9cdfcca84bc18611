//! The book (`docs/`, built by `make docs` with mdBook) and the README: every
//! relative link must name a file of the repository, and every `#anchor` a
//! heading of its Markdown target, with the ids mdBook gives headings. So a
//! renamed heading or a moved chapter fails `make test` until every link to it
//! is updated. Links with a scheme (`https:`, `mailto:`) are not followed: no
//! network. Every chapter must also be listed in `docs/src/SUMMARY.md`, and
//! the README must still give the test command `.ci/run` runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The files the check covers: the README and the book's sources.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    files.extend(markdown_files(&root.join("docs/src")));
    files
}

/// The lines of a Markdown file that are not inside a fenced code block, with
/// their 1-based line numbers. The fences themselves are left out too.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    // The open fence: its character and length (a fence closes with at least as many).
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match (fence, marker) {
            // A backtick fence's info string may not contain a backtick.
            (None, Some(c)) if indent <= 3 && run >= 3 && (c == '~' || !trimmed[run..].contains('`')) => {
                fence = Some((c, run));
                continue;
            }
            (Some((open, len)), Some(c)) => {
                if c == open && run >= len && indent <= 3 && trimmed[run..].trim().is_empty() {
                    fence = None;
                }
                continue;
            }
            (Some(_), None) => continue,
            _ => {}
        }
        out.push((i + 1, line));
    }
    out
}

/// A heading's id as mdBook 0.5 makes it (`id_from_content` in mdbook-html):
/// the rendered text, trimmed and lower-cased; letters, digits, `_` and `-`
/// kept, whitespace turned into `-`, everything else dropped.
fn id_from_text(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The text a line of inline Markdown renders to: code spans keep their
/// content, links and images their text, emphasis markers and backslashes of
/// escapes go.
fn rendered_text(md: &str) -> String {
    let chars: Vec<char> = md.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() && chars[i + 1].is_ascii_punctuation() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '`' => {
                let run = chars[i..].iter().take_while(|x| **x == '`').count();
                let close = closing_backticks(&chars, i + run, run);
                match close {
                    Some(j) => {
                        let code: String = chars[i + run..j].iter().collect();
                        // One leading and trailing space are stripped when both are there.
                        let code = if code.len() > 2 && code.starts_with(' ') && code.ends_with(' ') {
                            code[1..code.len() - 1].to_string()
                        } else {
                            code
                        };
                        out.push_str(&code);
                        i = j + run;
                    }
                    None => {
                        out.extend(&chars[i..i + run]);
                        i += run;
                    }
                }
            }
            '!' if chars.get(i + 1) == Some(&'[') => i += 1,
            '[' => {
                // `[text](target)`: keep the text, drop the target.
                if let Some(end) = matching(&chars, i, '[', ']') {
                    if chars.get(end + 1) == Some(&'(') {
                        if let Some(close) = matching(&chars, end + 1, '(', ')') {
                            let inner: String = chars[i + 1..end].iter().collect();
                            out.push_str(&rendered_text(&inner));
                            i = close + 1;
                            continue;
                        }
                    }
                }
                out.push(c);
                i += 1;
            }
            '*' | '~' => i += 1,
            '_' => {
                // Emphasis only at a word's edge; `snake_case` keeps its underscore.
                let before = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
                let after = chars.get(i + 1).copied();
                let word = |x: Option<char>| x.is_some_and(|x| x.is_alphanumeric());
                if word(before) && word(after) {
                    out.push(c);
                }
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The index of the bracket that closes the one at `open`, nesting counted.
fn matching(chars: &[char], open: usize, left: char, right: char) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            x if x == left => depth += 1,
            x if x == right => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The text of an ATX heading (`## Title ##`), or None for any other line.
fn atx_heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let hashes = trimmed.chars().take_while(|c| *c == '#').count();
    let rest = &trimmed[hashes..];
    if !(1..=6).contains(&hashes) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    // An optional closing sequence of `#`s, after a space.
    let without = rest.trim_end_matches('#');
    if without.is_empty() {
        return Some(without);
    }
    if without.len() < rest.len() && without.ends_with([' ', '\t']) {
        return Some(without.trim_end());
    }
    Some(rest)
}

/// The ids of a Markdown file's headings, as mdBook gives them: from the text,
/// or `{#custom-id}` at the end; a repeated id gets `-1`, `-2`, ... Also any
/// `id="..."` or `name="..."` of raw HTML.
fn anchors(text: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let prose = prose_lines(text);
    let mut previous: Option<(usize, &str)> = None;
    for &(n, line) in &prose {
        let heading = atx_heading(line).map(str::to_string).or_else(|| {
            // A setext heading: a paragraph line underlined with `=` or `-`.
            let under = line.trim();
            let setext = !under.is_empty()
                && (under.chars().all(|c| c == '=') || under.chars().all(|c| c == '-'))
                && line.len() - line.trim_start().len() <= 3;
            match previous {
                Some((p, text)) if setext && p + 1 == n && !text.trim().is_empty() && atx_heading(text).is_none() => {
                    Some(text.trim().to_string())
                }
                _ => None,
            }
        });
        if let Some(heading) = heading {
            let id = match heading.strip_suffix('}').and_then(|h| h.rsplit_once("{#")) {
                Some((_, custom)) => custom.split_whitespace().next().unwrap_or_default().to_string(),
                None => id_from_text(&rendered_text(&heading)),
            };
            unique_id(&id, &mut ids);
        }
        let html = without_code_spans(line);
        ids.extend(html_attribute(&html, "id"));
        ids.extend(html_attribute(&html, "name"));
        previous = Some((n, line));
    }
    ids
}

/// The values of a raw HTML attribute (` name="value"`, after whitespace, in a
/// line that opens a tag); code spans must have been blanked out already.
fn html_attribute(line: &str, name: &str) -> Vec<String> {
    let mut values = Vec::new();
    if !line.contains('<') {
        return values;
    }
    let pattern = format!("{name}=\"");
    let mut rest = line;
    while let Some(at) = rest.find(&pattern) {
        let value = &rest[at + pattern.len()..];
        let boundary = rest[..at].ends_with(char::is_whitespace);
        if let (true, Some(end)) = (boundary, value.find('"')) {
            values.push(value[..end].to_string());
        }
        rest = value;
    }
    values
}

/// mdBook's `unique_id`: the id itself if unused, else the first free `id-N`.
fn unique_id(id: &str, used: &mut HashSet<String>) -> String {
    if used.insert(id.to_string()) {
        return id.to_string();
    }
    (1u32..)
        .map(|n| format!("{id}-{n}"))
        .find(|candidate| used.insert(candidate.clone()))
        .unwrap()
}

/// The inline code spans of a line blanked out, so that a link shown as code
/// (`` `[text](target)` ``) is not taken for one.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            out.push(chars[i]);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if chars[i] == '`' {
            let run = chars[i..].iter().take_while(|x| **x == '`').count();
            let close = closing_backticks(&chars, i + run, run);
            if let Some(j) = close {
                out.extend(std::iter::repeat_n(' ', j + run - i));
                i = j + run;
                continue;
            }
            out.extend(&chars[i..i + run]);
            i += run;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// The link targets of a Markdown file, with their line numbers: inline links
/// and images (`[text](target "title")`, `<target>` form too), reference
/// definitions (`[label]: target`) and raw HTML `href`/`src`. Code blocks and
/// code spans are skipped.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && line.len() - trimmed.len() <= 3 {
            if let Some((label, rest)) = trimmed[1..].split_once("]:") {
                if !label.is_empty() && !label.contains(']') {
                    if let Some(target) = rest.split_whitespace().next() {
                        let target = target.trim_start_matches('<').trim_end_matches('>');
                        found.push((n, target.to_string()));
                    }
                }
            }
        }
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i + 1 < chars.len() {
            if chars[i] == ']' && chars[i + 1] == '(' && (i == 0 || chars[i - 1] != '\\') {
                let start = i + 2;
                let target = if chars.get(start) == Some(&'<') {
                    chars[start + 1..].iter().take_while(|c| **c != '>').collect::<String>()
                } else {
                    let mut depth = 0usize;
                    chars[start..]
                        .iter()
                        .take_while(|c| match c {
                            '(' => {
                                depth += 1;
                                true
                            }
                            ')' if depth == 0 => false,
                            ')' => {
                                depth -= 1;
                                true
                            }
                            c => !c.is_whitespace(),
                        })
                        .collect::<String>()
                };
                found.push((n, target));
                i = start;
                continue;
            }
            i += 1;
        }
        for attr in ["href", "src"] {
            found.extend(html_attribute(&line, attr).into_iter().map(|target| (n, target)));
        }
    }
    found
}

/// `%XX` escapes decoded (a link to `my%20file.md` names `my file.md`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        if let (b'%', Some(Ok(b))) = (bytes[i], hex.map(|h| u8::from_str_radix(h, 16))) {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/b/../c` as `a/c`, without touching the file system; None when it climbs
/// above the start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Some(out)
}

/// One broken link: where it is, what it says, and why it is broken.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Broken {
    file: String,
    line: usize,
    target: String,
    reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: `{}`: {}", self.file, self.line, self.target, self.reason)
    }
}

/// Checks the relative links of `files`, each resolved from its own directory
/// and required to stay inside `root`. Anchors into Markdown files must be
/// heading ids of the target; anchors into other files are not checked.
fn check_links(root: &Path, files: &[PathBuf]) -> Vec<Broken> {
    let mut broken = Vec::new();
    let mut cache: HashMap<PathBuf, HashSet<String>> = HashMap::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
        let dir = file.parent().unwrap();
        for (line, target) in links(&text) {
            let mut fail = |reason: String| {
                broken.push(Broken {
                    file: shown.clone(),
                    line,
                    target: target.clone(),
                    reason,
                });
            };
            // A scheme (`https:`, `mailto:`): not followed.
            let scheme = target.split_once(':').is_some_and(|(s, _)| {
                !s.is_empty()
                    && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            });
            if scheme || target.starts_with("//") {
                continue;
            }
            if target.is_empty() {
                fail("empty link".into());
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            if path.starts_with('/') {
                fail("absolute path: link relative to this file".into());
                continue;
            }
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                dir.join(percent_decode(path))
            };
            let inside = resolved
                .strip_prefix(root)
                .ok()
                .and_then(normalize)
                .map(|relative| root.join(relative));
            let Some(resolved) = inside else {
                fail("leads out of the repository".into());
                continue;
            };
            if !resolved.exists() {
                let from_root = resolved.strip_prefix(root).unwrap_or(&resolved).display().to_string();
                fail(format!("no such file: {from_root}"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if resolved.is_dir() || resolved.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let ids = cache.entry(resolved.clone()).or_insert_with(|| {
                anchors(&fs::read_to_string(&resolved).unwrap_or_else(|e| panic!("{}: {e}", resolved.display())))
            });
            let anchor = percent_decode(anchor);
            if !ids.contains(&anchor) {
                let mut near: Vec<&String> = ids.iter().filter(|id| !id.is_empty()).collect();
                near.sort();
                let name = resolved.file_name().unwrap().to_string_lossy();
                fail(format!("no heading with id `{anchor}` in {name} (its ids: {near:?})"));
            }
        }
    }
    broken.sort();
    broken
}

fn report(broken: &[Broken]) -> String {
    broken.iter().map(|b| format!("  {b}\n")).collect()
}

#[test]
fn every_relative_link_and_anchor_of_the_readme_and_the_book_resolves() {
    let root = repo_root();
    let files = documents();
    assert!(files.len() > 10, "the book's chapters are missing: {files:?}");
    let broken = check_links(&root, &files);
    assert!(broken.is_empty(), "broken links:\n{}", report(&broken));
}

#[test]
fn every_chapter_is_listed_in_the_summary() {
    let src = repo_root().join("docs/src");
    let summary = src.join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&fs::read_to_string(&summary).unwrap())
        .into_iter()
        .map(|(_, target)| normalize(&src.join(target.split('#').next().unwrap())).unwrap())
        .collect();
    let missing: Vec<String> = markdown_files(&src)
        .into_iter()
        .filter(|f| *f != summary && !listed.contains(f))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/src/SUMMARY.md, so not in the book: {missing:?}"
    );
}

#[test]
fn the_readme_gives_the_test_command_ci_runs() {
    let root = repo_root();
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let command = ci
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("make "))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect(".ci/run runs no make target");
    let shown = format!("make {command}   #");
    assert!(
        readme.lines().any(|l| l.starts_with(&shown)),
        "README.md no longer shows `make {command}`, the command .ci/run runs"
    );
}

#[test]
fn heading_ids_follow_mdbooks_rules() {
    // mdbook-html's own cases (utils.rs, `it_normalizes_ids`).
    assert_eq!(
        id_from_text("`--passes`: add more rustdoc passes"),
        "--passes-add-more-rustdoc-passes"
    );
    assert_eq!(
        id_from_text("Method-call 🐙 expressions \u{1f47c}"),
        "method-call--expressions-"
    );
    assert_eq!(id_from_text("_-_12345"), "_-_12345");
    assert_eq!(id_from_text("中文標題 CJK title"), "中文標題-cjk-title");
    assert_eq!(id_from_text("Über"), "über");
    // The text is the rendered one: code spans, links and emphasis as text.
    let id = |md: &str| id_from_text(&rendered_text(md));
    assert_eq!(
        id("`enable_oauth=False`: the reference deploys no Envoy at all"),
        "enable_oauthfalse-the-reference-deploys-no-envoy-at-all"
    );
    assert_eq!(id("One stack per team: `--split`"), "one-stack-per-team---split");
    assert_eq!(
        id("The whole path (`make bench-path`)"),
        "the-whole-path-make-bench-path"
    );
    assert_eq!(
        id("**Bold** and _emphasis_ and [a link](x.md)"),
        "bold-and-emphasis-and-a-link"
    );
    assert_eq!(id("The reference's listener port"), "the-references-listener-port");
    // Repeated headings, a closing sequence, a custom id, a setext heading, and
    // a `#` line in a code block (not a heading).
    let ids =
        anchors("# Usage\n## Usage ##\n### Usage\n## Other {#custom}\n```sh\n# not a heading\n```\nSetext\n------\n");
    let mut ids: Vec<_> = ids.into_iter().collect();
    ids.sort();
    assert_eq!(ids, ["custom", "setext", "usage", "usage-1", "usage-2"]);
}

#[test]
fn a_broken_link_or_anchor_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("docs/src/part")).unwrap();
    fs::write(root.join("SECURITY.md"), "# Security\n\n## Known limits\n").unwrap();
    fs::write(
        root.join("docs/src/other.md"),
        "# Other chapter\n\n## Real heading\n\n<a id=\"raw-anchor\"></a> `up{cluster_name=\"not-an-anchor\"}`\n",
    )
    .unwrap();
    let chapter = root.join("docs/src/part/chapter.md");
    fs::write(
        &chapter,
        "# A chapter\n\
         \n\
         Fine: [other](../other.md#real-heading), [top](#a-chapter), [repo](../../../SECURITY.md#known-limits),\n\
         [web](https://example.com/missing.md#nowhere), [mail](mailto:someone@example.com),\n\
         `[code](missing.md)` and an image ![chart](../other.md).\n\
         \n\
         ```md\n\
         [in a code block](missing.md)\n\
         ```\n\
         \n\
         Broken: [renamed chapter](../renamed.md), [renamed heading](../other.md#old-heading),\n\
         [here](#nowhere), [too far up](../../../../outside.md), ![picture](../chart.png),\n\
         [raw](../other.md#raw-anchor) is fine, [label](../other.md#not-an-anchor) is not.\n\
         \n\
         [ref]: ../../gone.md\n",
    )
    .unwrap();
    let broken = check_links(root, &[chapter]);
    let found: Vec<(usize, &str)> = broken.iter().map(|b| (b.line, b.target.as_str())).collect();
    assert_eq!(
        found,
        [
            (11, "../other.md#old-heading"),
            (11, "../renamed.md"),
            (12, "#nowhere"),
            (12, "../../../../outside.md"),
            (12, "../chart.png"),
            (13, "../other.md#not-an-anchor"),
            (15, "../../gone.md"),
        ],
        "{}",
        report(&broken)
    );
    let why: Vec<&str> = broken.iter().map(|b| b.reason.as_str()).collect();
    assert!(
        why[0].starts_with("no heading with id `old-heading` in other.md"),
        "{why:?}"
    );
    assert_eq!(why[1], "no such file: docs/src/renamed.md");
    assert!(
        why[2].starts_with("no heading with id `nowhere` in chapter.md"),
        "{why:?}"
    );
    assert_eq!(why[3], "leads out of the repository");
}

/// Where the code span opened by a run of `run` backticks closes: the next
/// run of exactly that length at or after `from`, if any.
fn closing_backticks(chars: &[char], from: usize, run: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == '`' {
            let r = chars[j..].iter().take_while(|x| **x == '`').count();
            if r == run {
                return Some(j);
            }
            j += r;
        } else {
            j += 1;
        }
    }
    None
}
