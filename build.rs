//! Embeds the web UI (`admin-ui/www/`) into the binary: writes `$OUT_DIR/ui_assets.rs`, a
//! table of every file's path (relative to `www/`, `/`-separated), bytes and content type,
//! sorted by path. No node, no bundler: the files are served as they are in the repository.

use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("admin-ui").join("www");
    println!("cargo:rerun-if-changed=admin-ui/www");
    let mut files = Vec::new();
    if root.is_dir() {
        walk(&root, &mut files);
    }
    files.sort();
    let mut out = String::from("pub static ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for path in &files {
        let rel = path.strip_prefix(&root).expect("under root");
        let rel: Vec<String> =
            rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        let rel = rel.join("/");
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?}), {:?}),\n",
            path.display().to_string(),
            content_type(&rel)
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("ui_assets.rs");
    std::fs::write(dest, out).expect("write ui_assets.rs");
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        // Editor droppings and dot files are not part of the UI.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ if path.ends_with("LICENSE") || path.contains("LICENSE") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
