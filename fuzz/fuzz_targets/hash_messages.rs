//! BEP 52 hash messages on arbitrary bytes: decoded with the frame bound, then requests
//! answered and answers checked against a real file's tree. Nothing may panic, an answer
//! has the length the request implies, and what is accepted is what the tree holds.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use share_core::hashes::{self, FileTree};
use share_core::merkle;
use share_core::wire::{self, Message};

const PL: u32 = 65536;

struct File {
    tree: FileTree,
    leaves: Vec<merkle::Hash>,
    root: merkle::Hash,
    layer: Vec<merkle::Hash>,
}

fn file() -> &'static File {
    static F: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let data: Vec<u8> = (0..300_001usize).map(|j| (j * 31 % 251) as u8).collect();
        let leaves = merkle::leaves(&data);
        let (root, layer) = merkle::file_tree(&leaves, data.len() as u64, PL);
        File {
            tree: FileTree {
                length: data.len() as u64,
                piece_length: PL,
            },
            leaves,
            root,
            layer: layer.unwrap(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = file();
    let mut buf = BytesMut::from(data);
    while let Ok(Some(m)) = wire::decode(&mut buf, wire::max_frame(64)) {
        match m {
            Message::HashRequest(mut r) | Message::HashReject(mut r) => {
                r.root = f.root;
                for answer in [
                    hashes::answer_from_layer(f.tree, &f.layer, &r),
                    hashes::answer_from_leaves(f.tree, &f.leaves, &r),
                ]
                .into_iter()
                .flatten()
                {
                    assert!(f.tree.valid(&r));
                    assert_eq!(answer.len(), FileTree::answer_len(&r));
                }
            }
            Message::Hashes { mut range, hashes: h } => {
                range.root = f.root;
                if let Ok(layer) = hashes::accept_layer(f.tree, &f.root, &range, &h) {
                    let i = range.index as usize;
                    assert_eq!(&f.layer[i..i + layer.len()], &layer[..]);
                }
                for (k, piece) in f.layer.iter().enumerate() {
                    if let Ok(blocks) = hashes::accept_blocks(f.tree, piece, &range, &h) {
                        let i = range.index as usize;
                        assert_eq!(&f.leaves[i..i + blocks.len()], &blocks[..], "piece {k}");
                    }
                }
            }
            _ => {}
        }
    }
});
