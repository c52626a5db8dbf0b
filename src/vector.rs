//! Sentence vectors (the encoder's embeddings are L2-normalised, so their dot product is
//! the cosine similarity): the one helper the knowledge base, the NLU heads and the
//! repeat trigger share.

/// The dot product of two vectors (over the shorter one's length).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_of_unit_vectors_is_their_cosine() {
        assert_eq!(super::dot(&[1.0, 0.0], &[0.0, 1.0]), 0.0);
        assert_eq!(super::dot(&[0.6, 0.8], &[0.6, 0.8]), 1.0);
        assert_eq!(super::dot(&[1.0, 2.0, 3.0], &[2.0]), 2.0);
    }
}
