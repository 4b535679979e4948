//! The verifier's transcript: halo2's Blake2b transcript, reading only canonical encodings.
//!
//! halo2curves decodes a compressed G1 point without checking its "point at infinity" flag unless the x coordinate
//! is zero, so each point of a proof has a second byte string that decodes to it. Such a proof proves the same
//! statement, but a validator that deduplicates or pays per proof bytes must not see two proofs where there is one:
//! [`CanonicalRead`] refuses any point whose bytes are not the encoding of the point they decode to (and, as halo2
//! does, any scalar not below the modulus). The challenges are the ones [`Blake2bRead`] squeezes.

use std::io::{self, Read};

use group::GroupEncoding;
use halo2_proofs::{
    halo2curves::bn256::{Fr, G1Affine},
    transcript::{Blake2bRead, Challenge255, Transcript, TranscriptRead, TranscriptReadBuffer},
};

/// A Blake2b transcript over `reader` that refuses non-canonical point and scalar encodings.
pub struct CanonicalRead<R: Read> {
    state: Blake2bRead<io::Empty, G1Affine, Challenge255<G1Affine>>,
    reader: R,
}

impl<R: Read> CanonicalRead<R> {
    /// A transcript reading the proof from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            state: Blake2bRead::init(io::empty()),
            reader,
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl<R: Read> Transcript<G1Affine, Challenge255<G1Affine>> for CanonicalRead<R> {
    fn squeeze_challenge(&mut self) -> Challenge255<G1Affine> {
        self.state.squeeze_challenge()
    }

    fn common_point(&mut self, point: G1Affine) -> io::Result<()> {
        self.state.common_point(point)
    }

    fn common_scalar(&mut self, scalar: Fr) -> io::Result<()> {
        self.state.common_scalar(scalar)
    }
}

impl<R: Read> TranscriptRead<G1Affine, Challenge255<G1Affine>> for CanonicalRead<R> {
    fn read_point(&mut self) -> io::Result<G1Affine> {
        let mut bytes = <G1Affine as GroupEncoding>::Repr::default();
        self.reader.read_exact(bytes.as_mut())?;
        let point: G1Affine =
            Option::from(G1Affine::from_bytes(&bytes)).ok_or_else(|| invalid("invalid point encoding in proof"))?;
        if point.to_bytes().as_ref() != bytes.as_ref() {
            return Err(invalid("non-canonical point encoding in proof"));
        }
        self.state.common_point(point)?;
        Ok(point)
    }

    fn read_scalar(&mut self) -> io::Result<Fr> {
        let mut bytes = <Fr as ff::PrimeField>::Repr::default();
        self.reader.read_exact(bytes.as_mut())?;
        let scalar: Fr = Option::from(<Fr as ff::PrimeField>::from_repr(bytes))
            .ok_or_else(|| invalid("invalid field element encoding in proof"))?;
        self.state.common_scalar(scalar)?;
        Ok(scalar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use group::Curve;
    use halo2_proofs::transcript::{Blake2bWrite, EncodedChallenge, TranscriptWrite, TranscriptWriterBuffer};

    /// The same messages read through [`CanonicalRead`] give halo2's challenges; a flipped infinity flag is
    /// refused although halo2curves would decode it.
    #[test]
    fn reads_what_halo2_writes_and_refuses_the_second_encoding() {
        let point = (G1Affine::generator() * Fr::from(77)).to_affine();
        let scalar = Fr::from(5);
        let mut writer = Blake2bWrite::<_, G1Affine, Challenge255<_>>::init(Vec::new());
        writer.write_point(point).unwrap();
        writer.write_scalar(scalar).unwrap();
        let expected = writer.squeeze_challenge();
        let proof = writer.finalize();

        let mut reader = CanonicalRead::new(&proof[..]);
        assert_eq!(reader.read_point().unwrap(), point);
        assert_eq!(reader.read_scalar().unwrap(), scalar);
        assert_eq!(reader.squeeze_challenge().get_scalar(), expected.get_scalar());

        let mut flagged = proof.clone();
        flagged[31] ^= 0x80;
        let mut repr = <G1Affine as GroupEncoding>::Repr::default();
        repr.as_mut().copy_from_slice(&flagged[..32]);
        let decoded: Option<G1Affine> = Option::from(G1Affine::from_bytes(&repr));
        assert_eq!(
            decoded,
            Some(point),
            "halo2curves ignores the flag (else this test proves nothing)"
        );
        let err = CanonicalRead::new(&flagged[..]).read_point().unwrap_err();
        assert!(err.to_string().contains("non-canonical"), "{err}");
        let mut too_big = proof;
        too_big[32..64].fill(0xff);
        let mut reader = CanonicalRead::new(&too_big[..]);
        reader.read_point().unwrap();
        assert!(reader.read_scalar().is_err());
    }
}
