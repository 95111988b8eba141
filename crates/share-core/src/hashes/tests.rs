//! Against libtorrent 2.0.8's captured answers (its test folder, 64 KiB pieces), and round
//! trips of what we ask and what we answer.
use super::*;

fn data(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|j| ((j * 31 + seed * 7) % 251) as u8)
        .collect()
}

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

const PL: u32 = 65536;

fn file(len: usize, seed: usize) -> (FileTree, Vec<Hash>, Hash, Vec<Hash>) {
    let leaves = merkle::leaves(&data(len, seed));
    let (root, layer) = merkle::file_tree(&leaves, len as u64, PL);
    let tree = FileTree {
        length: len as u64,
        piece_length: PL,
    };
    (tree, leaves, root, layer.unwrap_or_default())
}

fn range(root: Hash, base: u32, index: u32, length: u32, proof_layers: u32) -> HashRange {
    HashRange {
        root,
        base,
        index,
        length,
        proof_layers,
    }
}

#[test]
fn answers_are_what_libtorrent_answers() {
    let (tree, leaves, root, layer) = file(200000, 3); // c_big: 13 blocks, 4 pieces
    let got = answer_from_layer(tree, &layer, &range(root, 2, 0, 4, 1)).unwrap();
    assert_eq!(got, layer);
    let got = answer_from_leaves(tree, &leaves, &range(root, 0, 4, 4, 3)).unwrap();
    let want = [
        "89d279a9bce0a84af5d0aed76f5e12d1003364f8bf1ae51d85c0d03c3697b0c0",
        "538ef0f75289415456c0f733e1ac3862924b920e6ccd3a62087f2b37a81f05f8",
        "5422638d90ccc7c1554eabb46f1d10fcced04511bff11a9f60a6d6adaa64b835",
        "74b17966008afd93d038b2a665f4b8d51f863941a7d334499eb10141e764535a",
        "9b2588424b1a7ac9535a3b9171dc86339d7e50b3b34d0bb17c8b9612a6a6c810",
        "85ae9edd6288bbb4630379f1a4b739112d56e7910351bcd6aa794a8aa3293438",
    ];
    assert_eq!(got, want.map(h));
    // The tail: block 12, three zero leaves, one uncle (piece 2's hash).
    let got = answer_from_leaves(tree, &leaves, &range(root, 0, 12, 4, 2)).unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0],
        h("af2bad8ebe8a94cf9e9939c7c3c5b4dd51c71fa3d8c16acd2388e3e1bb0d4b18")
    );
    assert_eq!(got[1..4], [[0; 32]; 3]);
    assert_eq!(got[4], layer[2]);
    // f_two: three pieces, padded with a piece's pad hash.
    let (tree2, _, root2, layer2) = file(131077, 6);
    let got = answer_from_layer(tree2, &layer2, &range(root2, 2, 0, 4, 1)).unwrap();
    assert_eq!(got[3], merkle::pad_hash(2));
    // Too many proof layers, an index past the layer, a length of 0: refused.
    for bad in [
        range(root, 0, 4, 4, 9),
        range(root, 2, 4, 4, 0),
        range(root, 0, 0, 0, 0),
        range(root, 9, 0, 1, 0),
        range(root, 0, 0, 20000, 0),
    ] {
        assert!(!tree.valid(&bad), "{bad:?}");
        assert!(answer_from_leaves(tree, &leaves, &bad).is_none());
    }
    // Below the piece layer, the layer alone cannot answer.
    assert!(answer_from_layer(tree, &layer, &range(root, 0, 4, 4, 3)).is_none());
}

#[test]
fn a_layer_of_several_chunks_is_asked_proved_and_assembled() {
    // A file of 1500 pieces: three chunks, each proved to the root by uncles.
    let layer: Vec<Hash> = (0..1500u32)
        .map(|i| merkle::sha256(&i.to_be_bytes()))
        .collect();
    let tree = FileTree {
        length: 1500 * PL as u64 - 7,
        piece_length: PL,
    };
    let root = merkle::layer_root(&layer, PL);
    assert_eq!(layer_chunks(tree), 3);
    let mut got = Vec::new();
    for c in 0..layer_chunks(tree) {
        let r = layer_request(root, tree, c);
        assert!(tree.valid(&r), "{r:?}");
        let answer = answer_from_layer(tree, &layer, &r).unwrap();
        assert_eq!(answer.len(), FileTree::answer_len(&r));
        got.extend(accept_layer(tree, &root, &r, &answer).unwrap());
        // A changed hash, a missing uncle, another root: refused.
        let mut bad = answer.clone();
        bad[5][0] ^= 1;
        assert_eq!(accept_layer(tree, &root, &r, &bad), Err(HashError::Proof));
        assert!(matches!(
            accept_layer(tree, &root, &r, &answer[..answer.len() - 1]),
            Err(HashError::Count { .. })
        ));
        assert_eq!(
            accept_layer(tree, &[9; 32], &r, &answer),
            Err(HashError::Proof)
        );
    }
    assert_eq!(got, layer);
}

#[test]
fn block_hashes_of_a_piece_are_proved_by_its_hash() {
    let (tree, leaves, root, layer) = file(200000, 3);
    let r = blocks_request(root, tree, 1);
    assert_eq!((r.index, r.length), (4, 4));
    let answer = answer_from_leaves(tree, &leaves, &r).unwrap();
    assert_eq!(
        accept_blocks(tree, &layer[1], &r, &answer).unwrap(),
        leaves[4..8]
    );
    let mut bad = answer.clone();
    bad[2][7] ^= 1;
    assert_eq!(
        accept_blocks(tree, &layer[1], &r, &bad),
        Err(HashError::Proof)
    );
    // The last piece: one real block, three padding leaves dropped.
    let r = blocks_request(root, tree, 3);
    let answer = answer_from_leaves(tree, &leaves, &r).unwrap();
    assert_eq!(
        accept_blocks(tree, &layer[3], &r, &answer).unwrap(),
        leaves[12..]
    );
    // A file of one piece: its blocks, proved by its root.
    let (small, leaves, root, _) = file(40000, 2);
    let r = blocks_request(root, small, 0);
    assert_eq!(r.length, 4);
    let answer = answer_from_leaves(small, &leaves, &r).unwrap();
    assert_eq!(accept_blocks(small, &root, &r, &answer).unwrap(), leaves);
}

#[test]
fn block_hashes_are_answered_from_one_piece_and_the_layer() {
    // c_big: the captured answer for blocks 4..8 with 3 proof layers, from piece 1's
    // leaves and the layer only.
    let (tree, leaves, root, layer) = file(200000, 3);
    for (r, piece) in [
        (range(root, 0, 4, 4, 3), 1u64),
        (range(root, 0, 12, 4, 2), 3),
        (range(root, 0, 6, 2, 3), 1),
        (range(root, 1, 2, 2, 2), 1),
    ] {
        let bpp = 4usize;
        let from = piece as usize * bpp;
        let mine = &leaves[from..(from + bpp).min(leaves.len())];
        let want = answer_from_leaves(tree, &leaves, &r).unwrap();
        let got = answer_within_piece(tree, Some(&layer), piece, mine, &r).unwrap();
        assert_eq!(got, want, "{r:?}");
    }
    // Not inside the piece given: refused.
    assert!(answer_within_piece(
        tree,
        Some(&layer),
        2,
        &leaves[8..12],
        &range(root, 0, 4, 4, 3)
    )
    .is_none());
    // A file of one piece: its own leaves.
    let (small, leaves, root, _) = file(40000, 2);
    let r = blocks_request(root, small, 0);
    assert_eq!(
        answer_within_piece(small, None, 0, &leaves, &r),
        answer_from_leaves(small, &leaves, &r)
    );
}
