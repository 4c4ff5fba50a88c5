//! The crate's shape, checked: (a) no import cycle between the modules of `harness/src`,
//! (b) no file in `harness/src` over 700 lines, and (c) each top-level module (a "room" of
//! `ARCHITECTURE.md`) imports only the rooms that document's table says it may.
//!
//! (a) The module tree is read as the compiler reads it: from `lib.rs`, following `mod` items
//! (`#[path]` included) and parsing every file with `syn`, a real Rust parser, so comments and
//! doc comments never count and a string that merely looks like a path does not either. The
//! graphs: the top-level modules (spec, runner, platform, …), and, inside every module that has
//! children, those children (platform's local, kube, …; kube's cluster, render, …). An edge
//! a → b is any reference from code in a (or below it) to b (or below it): `use` items and paths
//! in code written `crate::…`, `super::…`, `self::…` or starting with a child module's name,
//! also inside macro invocations (`format!`, `tokio::select!`). A re-export is not followed to
//! where it was defined: the edge goes to the module named in the path.
//!
//! Code under `#[cfg(test)]`, `#[test]` and `#[tokio::test]` is left out: tests build their
//! fixtures from wherever they must (a judge test may make evidence the way load does), they are
//! not part of what a module needs to work, and they are not in the graph a newcomer must learn.
//! The binaries (`main.rs`, `bin/`) are other crates using the library, so they are not nodes.
//!
//! (b) Every `.rs` file under `harness/src` (test files included), by its line count, except
//! [`ALLOWED_OVER_700`] (empty: no generated or pure-data file is that large).
//!
//! (c) The table under `## The rooms` in `ARCHITECTURE.md` (a row per room: its name, what it
//! is, and the rooms it may import, each in backticks) against the top-level graph of (a): every
//! top-level module has a row, every row is a module, and every edge is listed in its row.
//!
//! The checker is tested on small planted module sets below (it must be able to fail).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// The most lines a file in `harness/src` may have.
const MAX_LINES: usize = 700;

/// Files allowed over [`MAX_LINES`], with why (relative to `harness/src`). None today.
const ALLOWED_OVER_700: &[(&str, &str)] = &[];

type ModPath = Vec<String>;

/// Where a module's source comes from: the disk, or (the checker's own tests) a map in memory.
trait Source {
    fn read(&self, path: &Path) -> Option<String>;
}

struct Disk;

impl Source for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }
}

impl Source for BTreeMap<PathBuf, String> {
    fn read(&self, path: &Path) -> Option<String> {
        self.get(path).cloned()
    }
}

/// A path written in some module's (non-test) code, as written (`crate`, `super`, … included).
struct Reference {
    from: ModPath,
    segments: Vec<String>,
    file: PathBuf,
}

#[derive(Default)]
struct Crate {
    modules: BTreeSet<ModPath>,
    references: Vec<Reference>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        let last = path.segments.last().map(|s| s.ident.to_string());
        if last.as_deref() == Some("test") {
            return true; // #[test], #[tokio::test]
        }
        path.is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string().trim() == "test")
    })
}

/// Collects the paths of a module's code (not of its test code, nor of its child modules).
struct Collector<'a> {
    module: &'a ModPath,
    file: &'a Path,
    out: &'a mut Vec<Reference>,
}

impl Collector<'_> {
    fn push(&mut self, segments: Vec<String>) {
        if !segments.is_empty() {
            self.out.push(Reference {
                from: self.module.clone(),
                segments,
                file: self.file.to_path_buf(),
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut s = prefix.clone();
                if n.ident != "self" {
                    s.push(n.ident.to_string());
                }
                self.push(s);
            }
            syn::UseTree::Rename(r) => {
                let mut s = prefix.clone();
                if r.ident != "self" {
                    s.push(r.ident.to_string());
                }
                self.push(s);
            }
            syn::UseTree::Glob(_) => self.push(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(_) => return, // its own module, read by `walk`
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Macro(i) => &i.attrs,
            _ => &Vec::new(),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    /// A macro's arguments are tokens, not syntax: the paths in them are read off the tokens
    /// (the lexer has already dropped the comments).
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        syn::visit::visit_macro(self, m);
        let text = m.tokens.to_string();
        let spaced: String = text
            .chars()
            .map(|c| {
                if "()[]{},;&!*<>=.#".contains(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let words: Vec<&str> = spaced.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            if matches!(words[i], "crate" | "super" | "self") {
                let mut s = vec![words[i].to_string()];
                let mut j = i + 1;
                while j + 1 < words.len() && words[j] == "::" {
                    s.push(words[j + 1].to_string());
                    j += 2;
                }
                if s.len() > 1 {
                    self.push(s);
                }
                i = j;
            } else {
                i += 1;
            }
        }
    }
}

/// Reads the module `module` from `items` (in `file`; its child modules' files are looked for
/// in `dir`), and its children, recursively.
fn walk(
    src: &dyn Source,
    krate: &mut Crate,
    module: &ModPath,
    file: &Path,
    dir: &Path,
    items: &[syn::Item],
) -> Result<(), String> {
    for item in items {
        let syn::Item::Mod(m) = item else {
            let mut c = Collector {
                module,
                file,
                out: &mut krate.references,
            };
            c.visit_item(item);
            continue;
        };
        if is_test(&m.attrs) {
            continue;
        }
        let name = m.ident.to_string();
        let mut child = module.clone();
        child.push(name.clone());
        krate.modules.insert(child.clone());
        if let Some((_, inline)) = &m.content {
            walk(src, krate, &child, file, &dir.join(&name), inline)?;
            continue;
        }
        let explicit = m.attrs.iter().find_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if a.path().is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        let candidates = match explicit {
            Some(p) => vec![file.parent().unwrap_or(Path::new("")).join(p)],
            None => vec![
                dir.join(format!("{name}.rs")),
                dir.join(&name).join("mod.rs"),
            ],
        };
        let (path, text) = candidates
            .iter()
            .find_map(|p| src.read(p).map(|t| (p.clone(), t)))
            .ok_or_else(|| format!("module {} : none of {candidates:?}", child.join("::")))?;
        let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let child_dir = if path.file_name().is_some_and(|f| f == "mod.rs") {
            path.parent().unwrap().to_path_buf()
        } else {
            path.with_extension("")
        };
        walk(src, krate, &child, &path, &child_dir, &parsed.items)?;
    }
    Ok(())
}

/// The crate whose root is `lib` (its children's files next to it).
fn load(src: &dyn Source, lib: &Path) -> Result<Crate, String> {
    let text = src
        .read(lib)
        .ok_or_else(|| format!("no {}", lib.display()))?;
    let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", lib.display()))?;
    let mut krate = Crate::default();
    krate.modules.insert(vec![]);
    let dir = lib.parent().unwrap_or(Path::new("")).to_path_buf();
    walk(src, &mut krate, &vec![], lib, &dir, &parsed.items)?;
    Ok(krate)
}

/// The module a reference lands in (the longest module prefix of its absolute path), if it is
/// one of the crate's.
fn target(krate: &Crate, r: &Reference) -> Option<ModPath> {
    let mut segs = r.segments.iter();
    let first = segs.next()?;
    let mut abs: ModPath = match first.as_str() {
        "crate" => vec![],
        "self" => r.from.clone(),
        "super" => {
            let mut base = r.from.clone();
            base.pop();
            let rest: Vec<&String> = segs.clone().collect();
            let ups = rest.iter().take_while(|s| s.as_str() == "super").count();
            for _ in 0..ups {
                base.pop();
                segs.next();
            }
            base
        }
        name => {
            let mut child = r.from.clone();
            child.push(name.to_string());
            if !krate.modules.contains(&child) {
                return None; // another crate, a local item, the prelude
            }
            child
        }
    };
    for s in segs {
        let mut next = abs.clone();
        next.push(s.clone());
        if !krate.modules.contains(&next) {
            break;
        }
        abs = next;
    }
    Some(abs)
}

/// Per parent module, its children's edges: a → b with one example (file, path) of why.
type Graphs = BTreeMap<ModPath, BTreeMap<String, BTreeMap<String, String>>>;

fn graphs(krate: &Crate, root: &Path) -> Graphs {
    let mut g = Graphs::new();
    for r in &krate.references {
        let Some(to) = target(krate, r) else { continue };
        let common = r.from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        if common >= r.from.len() || common >= to.len() {
            continue; // within one module, or to an ancestor or a descendant
        }
        let file = r.file.strip_prefix(root).unwrap_or(&r.file).display();
        g.entry(r.from[..common].to_vec())
            .or_default()
            .entry(r.from[common].clone())
            .or_default()
            .entry(to[common].clone())
            .or_insert_with(|| format!("{file}: {}", r.segments.join("::")));
    }
    g
}

/// Every cycle, one per strongly connected set of modules, as `a → b → a (why a → b; …)`.
fn cycles(g: &Graphs) -> Vec<String> {
    let mut out = Vec::new();
    for (parent, edges) in g {
        let nodes: BTreeSet<&String> = edges
            .iter()
            .flat_map(|(a, bs)| std::iter::once(a).chain(bs.keys()))
            .collect();
        let reach = |from: &String| -> BTreeMap<String, String> {
            // BFS: node → its predecessor on a shortest path from `from`.
            let mut prev = BTreeMap::new();
            let mut q = VecDeque::from([from.clone()]);
            while let Some(n) = q.pop_front() {
                for m in edges.get(&n).into_iter().flat_map(|e| e.keys()) {
                    if !prev.contains_key(m) {
                        prev.insert(m.clone(), n.clone());
                        q.push_back(m.clone());
                    }
                }
            }
            prev
        };
        let mut done: BTreeSet<String> = BTreeSet::new();
        for n in &nodes {
            if done.contains(*n) {
                continue;
            }
            let prev = reach(n);
            if !prev.contains_key(*n) {
                continue;
            }
            // The shortest cycle through n, walked back from n.
            let mut path = vec![(*n).clone()];
            let mut at = prev[*n].clone();
            while &at != *n {
                path.push(at.clone());
                at = prev[&at].clone();
            }
            path.push((*n).clone());
            path.reverse();
            // Its set (the nodes that reach n and that n reaches) is reported once.
            for m in &nodes {
                if prev.contains_key(*m) && reach(m).contains_key(*n) {
                    done.insert((*m).clone());
                }
            }
            let why: Vec<String> = path
                .windows(2)
                .map(|w| format!("{} → {}: {}", w[0], w[1], edges[&w[0]][&w[1]]))
                .collect();
            let inside = if parent.is_empty() {
                "crate".to_string()
            } else {
                parent.join("::")
            };
            out.push(format!(
                "in {inside}: {} ({})",
                path.join(" → "),
                why.join("; ")
            ));
        }
    }
    out
}

/// The files over [`MAX_LINES`] not allowed: `path: N lines`.
fn oversize(files: &[(String, usize)], allowed: &[(&str, &str)]) -> Vec<String> {
    files
        .iter()
        .filter(|(f, n)| *n > MAX_LINES && !allowed.iter().any(|(a, _)| a == f))
        .map(|(f, n)| format!("{f}: {n} lines"))
        .collect()
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_import_cycle_between_the_modules_of_harness_src() {
    let src = src_dir();
    let krate = load(&Disk, &src.join("lib.rs")).unwrap();
    assert!(
        krate.modules.len() > 50,
        "the module tree was read ({} modules)",
        krate.modules.len()
    );
    let found = cycles(&graphs(&krate, &src));
    assert!(
        found.is_empty(),
        "import cycles between modules of harness/src:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_file_in_harness_src_is_over_700_lines() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let counted: Vec<(String, usize)> = files
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().display().to_string();
            (rel, std::fs::read_to_string(p).unwrap().lines().count())
        })
        .collect();
    assert!(counted.len() > 50, "the files were found");
    let over = oversize(&counted, ALLOWED_OVER_700);
    assert!(
        over.is_empty(),
        "files in harness/src over {MAX_LINES} lines:\n  {}",
        over.join("\n  ")
    );
}

/// The rooms table of `ARCHITECTURE.md` (its `## The rooms` section): each room and the rooms it
/// may import.
fn rooms(markdown: &str) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let section = markdown
        .split("\n## ")
        .find(|s| s.starts_with("The rooms"))
        .ok_or("no `## The rooms` section")?;
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim().trim_matches('|').split('|').collect();
        let [room, _, imports] = cells[..] else {
            return Err(format!("a row of the rooms table is not 3 cells: {line}"));
        };
        let room = ticked(room).into_iter().next().ok_or(line)?;
        if out
            .insert(room.clone(), ticked(imports).into_iter().collect())
            .is_some()
        {
            return Err(format!("room `{room}` has two rows"));
        }
    }
    Ok(out)
}

/// The top-level edges the rooms table does not allow: `a → b (why)`; and the rooms that are not
/// top-level modules, or the reverse.
fn undeclared(
    krate: &Crate,
    g: &Graphs,
    allowed: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let top: BTreeSet<&String> = krate
        .modules
        .iter()
        .filter(|m| m.len() == 1)
        .map(|m| &m[0])
        .collect();
    let mut out: Vec<String> = top
        .iter()
        .filter(|m| !allowed.contains_key(**m))
        .map(|m| format!("module `{m}` has no row in the rooms table"))
        .chain(
            allowed
                .keys()
                .filter(|r| !top.contains(r))
                .map(|r| format!("room `{r}` is not a top-level module")),
        )
        .collect();
    for (a, bs) in g.get(&Vec::new()).into_iter().flatten() {
        for (b, why) in bs {
            if !allowed.get(a).is_some_and(|ok| ok.contains(b)) {
                out.push(format!("{a} → {b} ({why})"));
            }
        }
    }
    out
}

#[test]
fn every_room_imports_only_what_architecture_md_allows() {
    let src = src_dir();
    let krate = load(&Disk, &src.join("lib.rs")).unwrap();
    let doc = src.join("../../ARCHITECTURE.md");
    let allowed = rooms(&std::fs::read_to_string(&doc).unwrap()).unwrap();
    assert!(allowed.len() > 20, "the rooms table was read: {allowed:?}");
    let wrong = undeclared(&krate, &graphs(&krate, &src), &allowed);
    assert!(
        wrong.is_empty(),
        "imports between rooms that ARCHITECTURE.md's table does not allow (list an import there \
         only if it makes no cycle):\n  {}",
        wrong.join("\n  ")
    );
}

// The checker on planted examples.

fn planted(files: &[(&str, &str)]) -> Vec<String> {
    let src: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(p, t)| (PathBuf::from(p), t.to_string()))
        .collect();
    let krate = load(&src, Path::new("lib.rs")).unwrap();
    cycles(&graphs(&krate, Path::new("")))
}

#[test]
fn two_modules_using_each_other_are_a_cycle() {
    let found = planted(&[(
        "lib.rs",
        "pub mod report { use crate::runner::RunVerdict; pub struct Report; }
         pub mod runner { pub enum RunVerdict {} pub fn run() -> crate::report::Report { todo!() } }
         pub mod judge { use crate::report::Report; }",
    )]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("in crate: report → runner → report ("),
        "{found:?}"
    );
    assert!(found[0].contains("crate::runner::RunVerdict"), "{found:?}");
}

#[test]
fn a_cycle_through_files_super_paths_and_a_macro_is_found_inside_a_directory_module() {
    let found = planted(&[
        ("lib.rs", "pub mod platform;"),
        (
            "platform/mod.rs",
            "mod x; mod y;\n#[path = \"zed.rs\"] mod z;",
        ),
        ("platform/x.rs", "use super::y::A;"),
        ("platform/y.rs", "pub struct A; fn f() { super::z::g(); }"),
        (
            "platform/zed.rs",
            "pub fn g() { println!(\"{}\", crate::platform::x::N); }",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("in platform: x → y → z → x ("),
        "{found:?}"
    );
}

#[test]
fn comments_docs_strings_and_test_code_are_not_edges() {
    let found = planted(&[(
        "lib.rs",
        "pub mod evidence {
             //! Records what load sends (see [`crate::load::LATE_AFTER`]).
             // use crate::load::Driver;
             /// Like crate::load::Driver.
             pub struct Evidence;
             const WHY: &str = \"crate::load::x\";
             #[cfg(test)]
             mod tests { use crate::load::Driver; }
             #[test]
             fn t() { crate::load::drive(); }
         }
         pub mod load { use crate::evidence::Evidence; pub struct Driver; pub fn drive() {} }",
    )]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_file_over_the_limit_is_named_unless_allowed() {
    let files = vec![
        ("spec/mod.rs".to_string(), 701),
        ("runner.rs".to_string(), 700),
        ("generated.rs".to_string(), 5000),
    ];
    let over = oversize(&files, &[("generated.rs", "generated")]);
    assert_eq!(over, ["spec/mod.rs: 701 lines"]);
    assert_eq!(oversize(&files, &[]).len(), 2);
}

#[test]
fn an_import_the_rooms_table_does_not_list_is_named() {
    let table = "# x\n\n## The rooms and what each may import\n\n\
                 | room | what | may import |\n|---|---|---|\n\
                 | `units` | durations | nothing |\n\
                 | `spec` | files | `units` |\n\
                 | `ghost` | gone | nothing |\n\n## Next\n| `units` | again | `spec` |\n";
    let allowed = rooms(table).unwrap();
    assert_eq!(allowed.len(), 3, "{allowed:?}");
    let src: BTreeMap<PathBuf, String> = [(
        PathBuf::from("lib.rs"),
        "pub mod units { pub struct Dur; }
         pub mod spec { use crate::units::Dur; use crate::load::Rate; }
         pub mod load { pub struct Rate; fn f() { crate::spec::x(); } }"
            .to_string(),
    )]
    .into();
    let krate = load(&src, Path::new("lib.rs")).unwrap();
    let wrong = undeclared(&krate, &graphs(&krate, Path::new("")), &allowed);
    assert_eq!(
        wrong,
        [
            "module `load` has no row in the rooms table",
            "room `ghost` is not a top-level module",
            "load → spec (lib.rs: crate::spec::x)",
            "spec → load (lib.rs: crate::load::Rate)",
        ],
    );
}
