//! v2 and hybrid metainfo built from arbitrary input: a file tree of fuzzed names, lengths,
//! roots and attributes, `piece layers` right, wrong or missing, a v1 list beside it or
//! not. Nothing may panic; what loads keeps v2's promises.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_bencode::value::Value;
use share_core::merkle;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
}

const NAMES: [&[u8]; 8] = [b"a", b"b", b"sub", b"..", b"", b"x/y", b".pad", b"\xff"];

fn d(entries: Vec<(Vec<u8>, Value)>) -> Value {
    Value::Dict(entries.into_iter().collect())
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let flags = input.byte();
    let pl: u32 = 16384 << (input.byte() % 3);
    let mut tree: Vec<(Vec<u8>, Value)> = Vec::new();
    let mut layers: Vec<(Vec<u8>, Value)> = Vec::new();
    for _ in 0..input.byte() % 6 + 1 {
        let name = NAMES[input.byte() as usize % NAMES.len()].to_vec();
        let len = (input.byte() as u64) * 1000 * (1 + (input.byte() % 3) as u64 * 40);
        let content: Vec<u8> = (0..len).map(|j| (j as u8).wrapping_mul(input.0.len() as u8)).collect();
        let leaves = merkle::leaves(&content);
        let (root, layer) = merkle::file_tree(&leaves, len, pl);
        let mut props = vec![(b"length".to_vec(), Value::Int(len as i64))];
        match input.byte() % 4 {
            0 => {}
            1 => props.push((b"pieces root".to_vec(), Value::Bytes(vec![7; 32]))),
            _ => props.push((b"pieces root".to_vec(), Value::Bytes(root.to_vec()))),
        }
        if input.byte() % 5 == 0 {
            props.push((b"attr".to_vec(), Value::Bytes(b"l".to_vec())));
            props.push((b"symlink path".to_vec(), Value::List(vec![Value::Bytes(b"a".to_vec())])));
        }
        if let Some(layer) = layer {
            let mut bytes = layer.concat();
            match input.byte() % 4 {
                0 => continue,
                1 if !bytes.is_empty() => bytes[0] ^= 1,
                2 => bytes.truncate(bytes.len().saturating_sub(32)),
                _ => {}
            }
            layers.push((root.to_vec(), Value::Bytes(bytes)));
        }
        let node = d(vec![(Vec::new(), d(props))]);
        let node = if input.byte() % 3 == 0 {
            d(vec![(b"sub".to_vec(), node)])
        } else {
            node
        };
        tree.push((name, node));
    }
    let mut info = vec![
        (b"file tree".to_vec(), d(tree)),
        (b"meta version".to_vec(), Value::Int(2 + (flags & 1) as i64)),
        (b"name".to_vec(), Value::Bytes(b"t".to_vec())),
        (b"piece length".to_vec(), Value::Int(pl as i64)),
    ];
    if flags & 2 != 0 {
        info.push((b"pieces".to_vec(), Value::Bytes(vec![0; 20 * (input.byte() as usize % 40)])));
        info.push((b"length".to_vec(), Value::Int(input.byte() as i64 * 1000)));
    }
    let mut top = vec![(b"info".to_vec(), d(info))];
    if flags & 4 == 0 {
        top.push((b"piece layers".to_vec(), d(layers)));
    }
    let Ok(bytes) = serde_bencode::to_bytes(&d(top)) else { return };
    let Ok(mut m) = share_core::Metainfo::from_bytes(&bytes) else { return };
    let info = &m.info;
    assert!(info.v2);
    for f in info.files.iter().filter(|f| !f.padding && f.length > 0) {
        assert_eq!(f.offset % info.piece_length as u64, 0, "a file starts a piece");
        assert!(f.pieces_root.is_some());
    }
    for (root, layer) in &m.piece_layers {
        assert_eq!(&merkle::layer_root(layer, info.piece_length), root);
    }
    for i in 0..info.piece_count() {
        let _ = m.v2_piece(i);
    }
    for root in m.missing_layers() {
        assert!(!m.add_piece_layer(root, vec![[0; 32]]));
    }
    let _ = m.magnet();
    let again = share_core::Metainfo::from_bytes(&m.to_torrent_bytes()).unwrap();
    assert_eq!(again.hashes, m.hashes);
});
