//! Pipeline packages in archives, as the real server reads them (`server/util.go`): a `.zip` or a
//! gzipped tarball, recognised by content; the entry named `pipeline.yaml`, else the first entry,
//! which must end in `.yaml`/`.yml`. Decompressed content is capped at 32 MiB (the real server
//! has no cap there).

use std::io::Read;

use kfp_api::wire::limits::MAX_UPLOAD_BYTES;

pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.len() > 2 && bytes.starts_with(b"PK")
}

pub fn is_tar_gz(bytes: &[u8]) -> bool {
    bytes.len() > 2 && bytes.starts_with(&[0x1f, 0x8b])
}

fn is_yaml_name(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Read at most the upload limit from `reader`; more is an error.
fn read_capped(reader: impl Read, what: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(MAX_UPLOAD_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress {what}: {e}"))?;
    if out.len() > MAX_UPLOAD_BYTES {
        return Err(format!(
            "{what} decompresses to more than {MAX_UPLOAD_BYTES} bytes (32 MiB)"
        ));
    }
    Ok(out)
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

struct ZipEntry {
    name: String,
    method: usize,
    flags: usize,
    compressed: usize,
    local_offset: usize,
}

fn zip_entries(b: &[u8]) -> Option<Vec<ZipEntry>> {
    // End of central directory: the last `PK\x05\x06` within the final 64 KiB + 22 bytes.
    let start = b.len().saturating_sub(65_557);
    let eocd = (start..b.len().saturating_sub(21))
        .rev()
        .find(|&i| b[i..].starts_with(b"PK\x05\x06"))?;
    let count = u16_at(b, eocd + 10)?;
    let mut at = u32_at(b, eocd + 16)?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        if !b.get(at..)?.starts_with(b"PK\x01\x02") {
            return None;
        }
        let name_len = u16_at(b, at + 28)?;
        let extra_len = u16_at(b, at + 30)?;
        let comment_len = u16_at(b, at + 32)?;
        let name = String::from_utf8_lossy(b.get(at + 46..at + 46 + name_len)?).into_owned();
        entries.push(ZipEntry {
            name,
            flags: u16_at(b, at + 8)?,
            method: u16_at(b, at + 10)?,
            compressed: u32_at(b, at + 20)?,
            local_offset: u32_at(b, at + 42)?,
        });
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(entries)
}

/// The pipeline YAML inside a zip file.
pub fn from_zip(b: &[u8]) -> Result<Vec<u8>, String> {
    let entries = zip_entries(b)
        .ok_or("Error extracting pipeline from the zip file. Not a valid zip file")?;
    let entry = entries
        .iter()
        .find(|e| e.name == "pipeline.yaml")
        .or_else(|| entries.first())
        .ok_or("Error extracting pipeline from the zip file. Empty zip file")?;
    if !is_yaml_name(&entry.name) {
        return Err(format!(
            "Error extracting pipeline from the zip file. Expecting a pipeline.yaml file inside the zip. Got: {}",
            entry.name
        ));
    }
    if entry.flags & 1 != 0 {
        return Err(format!("zip entry {:?} is encrypted", entry.name));
    }
    let at = entry.local_offset;
    let data = (|| {
        if !b.get(at..)?.starts_with(b"PK\x03\x04") {
            return None;
        }
        let start = at + 30 + u16_at(b, at + 26)? + u16_at(b, at + 28)?;
        b.get(start..start.checked_add(entry.compressed)?)
    })()
    .ok_or("Error extracting pipeline from the zip file. Not a valid zip file")?;
    match entry.method {
        0 => read_capped(data, "the zip entry"),
        8 => read_capped(flate2::read::DeflateDecoder::new(data), "the zip entry"),
        m => Err(format!(
            "zip entry {:?} uses compression method {m}; only stored and deflate are supported",
            entry.name
        )),
    }
}

fn tar_field(block: &[u8], from: usize, to: usize) -> String {
    let raw = &block[from..to];
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

fn tar_size(block: &[u8]) -> Option<usize> {
    let text = tar_field(block, 124, 136);
    usize::from_str_radix(text.trim(), 8).ok()
}

/// Entries of a tar stream as (name, content), with GNU long names and PAX paths applied.
fn tar_entries(tar: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let invalid = || "Error extracting pipeline from the tarball file. Not a valid tarball file";
    let mut out = Vec::new();
    let mut at = 0;
    let mut long_name: Option<String> = None;
    while at + 512 <= tar.len() {
        let block = &tar[at..at + 512];
        if block.iter().all(|&c| c == 0) {
            break;
        }
        let size = tar_size(block).ok_or_else(invalid)?;
        let data = tar
            .get(at + 512..at + 512 + size)
            .ok_or_else(invalid)?
            .to_vec();
        at += 512 + size.div_ceil(512) * 512;
        let kind = block[156];
        match kind {
            b'L' => {
                long_name = Some(tar_field(&data, 0, data.len()));
                continue;
            }
            b'x' => {
                let text = String::from_utf8_lossy(&data);
                long_name = text.lines().find_map(|line| {
                    line.split_once(' ')
                        .and_then(|(_, kv)| kv.strip_prefix("path="))
                        .map(str::to_string)
                });
                continue;
            }
            b'g' => continue,
            _ => {}
        }
        let name = long_name.take().unwrap_or_else(|| {
            let name = tar_field(block, 0, 100);
            let prefix = if &block[257..262] == b"ustar" {
                tar_field(block, 345, 500)
            } else {
                String::new()
            };
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        out.push((name, data));
    }
    Ok(out)
}

/// The pipeline YAML inside a gzipped tarball.
pub fn from_tar_gz(b: &[u8]) -> Result<Vec<u8>, String> {
    let tar = read_capped(flate2::read::MultiGzDecoder::new(b), "the tarball").map_err(|e| {
        format!("Error extracting pipeline from the tarball file. Not a valid tarball file: {e}")
    })?;
    let entries = tar_entries(&tar)?;
    if let Some((_, data)) = entries.iter().find(|(n, _)| n == "pipeline.yaml") {
        return Ok(data.clone());
    }
    let (name, data) = entries.into_iter().next().ok_or(
        "Error extracting pipeline from the tarball file. Not a valid tarball file (no entries)",
    )?;
    if !is_yaml_name(&name) {
        return Err(format!(
            "Error extracting pipeline from the tarball file. Expecting a pipeline.yaml file inside the tarball. Got: {name}"
        ));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn tar_header(name: &str, size: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        let size = format!("{size:011o}\0");
        h[124..136].copy_from_slice(size.as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (name, data) in files {
            tar.extend(tar_header(name, data.len(), b'0'));
            tar.extend_from_slice(data);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.extend(vec![0u8; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).expect("gzip");
        gz.finish().expect("gzip")
    }

    #[test]
    fn tarball_prefers_pipeline_yaml_then_the_first_entry() {
        let t = tar_gz(&[("notes.txt", b"x"), ("pipeline.yaml", b"a: 1\n")]);
        assert!(is_tar_gz(&t));
        assert_eq!(from_tar_gz(&t).expect("found"), b"a: 1\n");
        let t = tar_gz(&[("spec.yml", b"b: 2\n"), ("other.yaml", b"c: 3\n")]);
        assert_eq!(from_tar_gz(&t).expect("first"), b"b: 2\n");
        let t = tar_gz(&[("notes.txt", b"x")]);
        assert!(
            from_tar_gz(&t)
                .expect_err("not yaml")
                .contains("Got: notes.txt")
        );
        assert!(from_tar_gz(&[0x1f, 0x8b, 0, 1, 2]).is_err());
    }

    #[test]
    fn garbage_zip_is_an_error_not_a_panic() {
        assert!(from_zip(b"PK\x03\x04garbage").is_err());
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend([
            0u8, 0, 0, 0, 5, 0, 5, 0, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0,
        ]);
        assert!(from_zip(&eocd).is_err());
    }
}
