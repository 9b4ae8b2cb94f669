//! Printing admin output: aligned columns for people, JSON for scripts.

use super::Output;

pub fn print(output: &Output, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(&to_json(output)).unwrap_or_default());
    } else {
        print_text(output);
    }
}

/// Tables become arrays of objects keyed by column name; sections an object of parts.
pub fn to_json(output: &Output) -> serde_json::Value {
    match output {
        Output::Message { text } => serde_json::json!({ "message": text }),
        Output::Table { headers, rows } => serde_json::Value::Array(
            rows.iter()
                .map(|r| {
                    serde_json::Value::Object(
                        headers
                            .iter()
                            .zip(r)
                            .map(|(h, v)| (h.clone(), serde_json::Value::String(v.clone())))
                            .collect(),
                    )
                })
                .collect(),
        ),
        Output::Sections { parts } => {
            serde_json::Value::Object(parts.iter().map(|(title, o)| (title.clone(), to_json(o))).collect())
        }
    }
}

fn print_text(output: &Output) {
    match output {
        Output::Message { text } => println!("{text}"),
        Output::Table { headers, rows } => print_table(headers, rows),
        Output::Sections { parts } => {
            for (i, (title, o)) in parts.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("{title}:");
                print_text(o);
            }
        }
    }
}

fn print_table(headers: &[String], rows: &[Vec<String>]) {
    if rows.is_empty() {
        println!("(none)");
        return;
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}", w = *w))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(headers);
    for r in rows {
        line(r);
    }
}
