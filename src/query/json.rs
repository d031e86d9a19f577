//! Query rows as JSON objects, encoded as Restate's `/query` encodes them (the CLI parses
//! these): a NULL column is left out of its row; strings and numbers as JSON; binary as
//! lowercase hex; timestamps as RFC 3339 in UTC with `Z` (a fraction only when non-zero);
//! durations as ISO 8601 (`PT86400S`, `PT1.5S`, zero `P0D`); lists as arrays. Any other type
//! is written as its Arrow display string.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{self as dt, DataType, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Appends each row of `batch` as an object, comma-separated; `any` says whether a row was
/// written before (across batches).
pub fn write_rows(
    batch: &RecordBatch,
    out: &mut Vec<u8>,
    any: &mut bool,
) -> Result<(), ArrowError> {
    let schema = batch.schema();
    let names: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| serde_json::to_string(f.name()).unwrap_or_else(|_| "\"\"".into()))
        .collect();
    for row in 0..batch.num_rows() {
        if *any {
            out.push(b',');
        }
        *any = true;
        out.push(b'{');
        let mut first = true;
        for (c, col) in batch.columns().iter().enumerate() {
            if col.is_null(row) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(names[c].as_bytes());
            out.push(b':');
            value(col, row, out)?;
        }
        out.push(b'}');
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(serde_json::to_string(s).unwrap_or_default().as_bytes());
}

fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 15) as usize]);
    }
    out.push(b'"');
}

fn to_ms(v: i64, unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => v.saturating_mul(1000),
        TimeUnit::Millisecond => v,
        TimeUnit::Microsecond => v.div_euclid(1000),
        TimeUnit::Nanosecond => v.div_euclid(1_000_000),
    }
}

/// ISO 8601 duration of `ms` milliseconds, as chrono prints it.
fn duration(ms: i64, out: &mut Vec<u8>) {
    if ms == 0 {
        out.extend_from_slice(b"\"P0D\"");
        return;
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    let (secs, frac) = (ms / 1000, ms % 1000);
    let text = match frac {
        0 => format!("\"{sign}PT{secs}S\""),
        f => {
            let f = format!("{f:03}");
            format!("\"{sign}PT{secs}.{}S\"", f.trim_end_matches('0'))
        }
    };
    out.extend_from_slice(text.as_bytes());
}

fn value(col: &ArrayRef, row: usize, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    macro_rules! number {
        ($t:ty) => {{
            let v = col.as_primitive::<$t>().value(row);
            out.extend_from_slice(v.to_string().as_bytes());
        }};
    }
    match col.data_type() {
        DataType::Utf8 => string(col.as_string::<i32>().value(row), out),
        DataType::LargeUtf8 => string(col.as_string::<i64>().value(row), out),
        DataType::Utf8View => string(col.as_string_view().value(row), out),
        DataType::Boolean => {
            out.extend_from_slice(if col.as_boolean().value(row) { b"true" } else { b"false" })
        }
        DataType::Int8 => number!(dt::Int8Type),
        DataType::Int16 => number!(dt::Int16Type),
        DataType::Int32 => number!(dt::Int32Type),
        DataType::Int64 => number!(dt::Int64Type),
        DataType::UInt8 => number!(dt::UInt8Type),
        DataType::UInt16 => number!(dt::UInt16Type),
        DataType::UInt32 => number!(dt::UInt32Type),
        DataType::UInt64 => number!(dt::UInt64Type),
        DataType::Float32 | DataType::Float64 => {
            let f = match col.data_type() {
                DataType::Float32 => f64::from(col.as_primitive::<dt::Float32Type>().value(row)),
                _ => col.as_primitive::<dt::Float64Type>().value(row),
            };
            match serde_json::Number::from_f64(f) {
                Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                None => out.extend_from_slice(b"null"),
            }
        }
        DataType::Binary => hex(col.as_binary::<i32>().value(row), out),
        DataType::LargeBinary => hex(col.as_binary::<i64>().value(row), out),
        DataType::BinaryView => hex(col.as_binary_view().value(row), out),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => col.as_primitive::<dt::TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    col.as_primitive::<dt::TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    col.as_primitive::<dt::TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => {
                    col.as_primitive::<dt::TimestampNanosecondType>().value(row)
                }
            };
            let ms = to_ms(v, unit).max(0) as u64;
            string(&ratchet::timefmt::rfc3339_ms(ms), out)
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => col.as_primitive::<dt::DurationSecondType>().value(row),
                TimeUnit::Millisecond => {
                    col.as_primitive::<dt::DurationMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    col.as_primitive::<dt::DurationMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => col.as_primitive::<dt::DurationNanosecondType>().value(row),
            };
            duration(to_ms(v, unit), out)
        }
        DataType::List(_) => list(&col.as_list::<i32>().value(row), out)?,
        DataType::LargeList(_) => list(&col.as_list::<i64>().value(row), out)?,
        _ => {
            let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?;
            string(&f.value(row).to_string(), out)
        }
    }
    Ok(())
}

fn list(items: &ArrayRef, out: &mut Vec<u8>) -> Result<(), ArrowError> {
    out.push(b'[');
    for i in 0..items.len() {
        if i > 0 {
            out.push(b',');
        }
        if items.is_null(i) {
            out.extend_from_slice(b"null");
        } else {
            value(items, i, out)?;
        }
    }
    out.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_chrono_does() {
        let d = |ms| {
            let mut out = Vec::new();
            duration(ms, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(d(0), "\"P0D\"");
        assert_eq!(d(86_400_000), "\"PT86400S\"");
        assert_eq!(d(1_500), "\"PT1.5S\"");
        assert_eq!(d(1_050), "\"PT1.05S\"");
    }
}
