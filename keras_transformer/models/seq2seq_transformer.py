"""The encoder-decoder Transformer as one Keras model that owns its parts.

Shape letters: see `keras_transformer` (B, S, T, D, V, K, M).
"""

import os

import keras
from keras import ops

from keras_transformer.layers import (
    FeedForward,
    TokenAndPositionEmbedding,
    TransformerDecoder,
    TransformerEncoder,
)
from keras_transformer.layers.validation import (
    check_choice,
    check_number,
    check_positive_int,
    check_rate,
)

ENCODER_INPUT = "encoder_token_ids"
DECODER_INPUT = "decoder_token_ids"

# Layers that act on each position alone, the only ones allowed after the
# decoder: a decoding step runs the head on one position at a time, so a
# layer that mixed positions would decode differently from `model(...)`.
POSITION_WISE_LAYERS = (
    keras.layers.Dense,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.Dropout,
    FeedForward,
)


def _check_part(name, layer, expected):
    if not isinstance(layer, expected):
        raise ValueError(
            f"`{name}` must be a `keras_transformer.layers.{expected.__name__}` (decoding "
            f"runs its cached path). Received: {name}={layer!r} of type "
            f"{type(layer).__name__}."
        )


def _check_output_layer(index, layer):
    """Raises ValueError unless `layer` acts on the last axis of each position alone."""
    axis = getattr(layer, "axis", -1)
    on_last_axis = axis in (-1, [-1], (-1,), 2, [2], (2,))
    if not isinstance(layer, POSITION_WISE_LAYERS) or not on_last_axis:
        allowed = ", ".join(cls.__name__ for cls in POSITION_WISE_LAYERS)
        raise ValueError(
            f"`output_layers[{index}]` must act on each position alone ({allowed}, "
            "normalizing the last axis), because decoding runs the head on one "
            f"position at a time. Received {type(layer).__name__} '{layer.name}'"
            + ("" if on_last_axis else f" with axis={axis!r}")
            + "."
        )


def check_seq2seq_model(model, purpose: str = "Decoding") -> "Seq2SeqTransformer":
    """`model` if it is a `Seq2SeqTransformer`; else a ValueError saying how to make one."""
    if isinstance(model, Seq2SeqTransformer):
        return model
    name = getattr(model, "name", None)
    if isinstance(model, (str, os.PathLike)):
        raise ValueError(
            f"{purpose} needs a `keras_transformer.models.Seq2SeqTransformer`. Received "
            f"the path {str(model)!r}; load it first with `keras.saving.load_model(path)`."
        )
    raise ValueError(
        f"{purpose} needs a `keras_transformer.models.Seq2SeqTransformer`. Received "
        f"{type(model).__name__}" + (f" '{name}'" if name else "") + ". A model "
        "composed with `keras.Model(inputs, outputs)` is not decoded: its step-by-step "
        "path could not be checked against its forward pass. Build one with "
        "`build_seq2seq_transformer(...)`, or compose your layers with "
        "`Seq2SeqTransformer(encoder_embedding=..., encoder=..., decoder_embedding=..., "
        "decoder=..., output_layers=[...])`."
    )


@keras.saving.register_keras_serializable(package="keras_transformer")
class Seq2SeqTransformer(keras.Model):
    """An encoder-decoder Transformer built from its parts (section 3).

    A functional `keras.Model` (as KerasHub's backbones are) that holds its
    parts as attributes. Its forward pass, `encode` and `decode_step` run the
    same methods on the same layers, so decoding step by step with caches
    gives what `model(...)` gives, and `generate` decodes with them:

        logits = head(decoder(target_embedding(decoder_token_ids),
                              encoder(source_embedding(encoder_token_ids))))

    where `head` is `output_layers` applied in order, then, with
    `tie_embeddings`, the transposed target embedding (section 3.4). Token id
    0 is padding on both sides; the logits carry the Keras mask of the
    decoder ids, so Keras losses and metrics skip padded positions.

    Args:
        encoder_embedding: a `TokenAndPositionEmbedding` of source ids.
        encoder: a `TransformerEncoder`.
        decoder_embedding: a `TokenAndPositionEmbedding` of target ids; pass
            `encoder_embedding` itself to share one table (one vocabulary).
        decoder: a `TransformerDecoder`.
        output_layers: layers after the decoder that act on each position
            alone (`Dense`, `LayerNormalization`, `Activation`, `Dropout`,
            `FeedForward`); without `tie_embeddings` the last one must give
            V = the target vocabulary size logits.
        tie_embeddings: end the head with the transposed target embedding.
        embedding_dropout: P_drop on both embeddings' outputs (training only).
        **kwargs: `name`, `dtype`, `trainable`.

    Call arguments:
        inputs: `{"encoder_token_ids": int32 (B, S), "decoder_token_ids":
            int32 (B, T)}`.

    Returns:
        float32 (B, T, V) logits.

    Example:
    >>> from keras_transformer.layers import (TokenAndPositionEmbedding,
    ...     TransformerDecoder, TransformerEncoder)
    >>> model = Seq2SeqTransformer(
    ...     encoder_embedding=TokenAndPositionEmbedding(30, 16, 8),
    ...     encoder=TransformerEncoder(1, num_heads=2, intermediate_dim=16),
    ...     decoder_embedding=TokenAndPositionEmbedding(40, 16, 8),
    ...     decoder=TransformerDecoder(2, num_heads=2, intermediate_dim=16),
    ...     output_layers=[keras.layers.LayerNormalization(), keras.layers.Dense(40)],
    ...     tie_embeddings=False)
    >>> ids = keras.ops.ones((1, 5), "int32")
    >>> model({"encoder_token_ids": ids, "decoder_token_ids": ids}).shape
    (1, 5, 40)
    >>> tokens, scores = model.generate(ids, max_length=6, start_token_id=2,
    ...     end_token_id=3)

    Reference:
        Vaswani et al., 2017, section 3.
    """

    def __init__(
        self,
        encoder_embedding,
        encoder,
        decoder_embedding,
        decoder,
        output_layers=(),
        tie_embeddings=True,
        embedding_dropout=0.0,
        **kwargs,
    ):
        _check_part("encoder_embedding", encoder_embedding, TokenAndPositionEmbedding)
        _check_part("encoder", encoder, TransformerEncoder)
        _check_part("decoder_embedding", decoder_embedding, TokenAndPositionEmbedding)
        _check_part("decoder", decoder, TransformerDecoder)
        output_layers = list(output_layers)
        for index, layer in enumerate(output_layers):
            _check_output_layer(index, layer)
        check_rate("embedding_dropout", embedding_dropout)
        if not tie_embeddings and not output_layers:
            raise ValueError(
                "With `tie_embeddings=False`, `output_layers` must end with a layer "
                "giving the logits, such as `keras.layers.Dense(target_vocabulary_size)`. "
                "Received no output layers."
            )

        # === Layers ===
        self.encoder_embedding = encoder_embedding
        self.encoder = encoder
        self.decoder_embedding = decoder_embedding
        self.decoder = decoder
        self.output_layers = output_layers
        self.encoder_embedding_dropout = keras.layers.Dropout(
            embedding_dropout, name="encoder_embedding_dropout"
        )
        self.decoder_embedding_dropout = keras.layers.Dropout(
            embedding_dropout, name="decoder_embedding_dropout"
        )
        self.logits_float32 = keras.layers.Activation(
            "linear", dtype="float32", name="logits_float32"
        )
        self.tie_embeddings = tie_embeddings
        self.embedding_dropout = embedding_dropout

        # === Functional model ===
        encoder_token_ids = keras.Input((None,), dtype="int32", name=ENCODER_INPUT)  # (B, S)
        decoder_token_ids = keras.Input((None,), dtype="int32", name=DECODER_INPUT)  # (B, T)
        encoder_outputs, encoder_padding_mask = self._encode(encoder_token_ids)
        x = self.decoder_embedding(decoder_token_ids)  # (B, T, D), masked
        x = self.decoder_embedding_dropout(x)
        x = self.decoder(
            x, encoder_outputs, encoder_padding_mask=encoder_padding_mask
        )  # (B, T, D)
        logits = self._head(x)  # (B, T, V)
        super().__init__(
            inputs={ENCODER_INPUT: encoder_token_ids, DECODER_INPUT: decoder_token_ids},
            outputs=logits,
            **kwargs,
        )

        if logits.shape[-1] != self.target_vocabulary_size:
            raise ValueError(
                f"The head gives {logits.shape[-1]} logits per position, but the target "
                f"vocabulary has {self.target_vocabulary_size} ids "
                "(`decoder_embedding.vocabulary_size`); they must be equal."
            )

    # --- the parts every path shares -----------------------------------------

    def _encode(self, encoder_token_ids, training=None):
        encoder_padding_mask = ops.not_equal(encoder_token_ids, 0)  # (B, S)
        x = self.encoder_embedding(encoder_token_ids)  # (B, S, D)
        x = self.encoder_embedding_dropout(x, training=training)
        x = self.encoder(x, padding_mask=encoder_padding_mask, training=training)  # (B, S, D)
        return x, encoder_padding_mask

    def _head(self, x):
        """(B, T, D) decoder outputs -> float32 (B, T, V) logits."""
        for layer in self.output_layers:
            x = layer(x)
        if self.tie_embeddings:
            x = self.decoder_embedding(x, reverse=True)
        return self.logits_float32(x)

    # --- properties -----------------------------------------------------------

    @property
    def source_vocabulary_size(self) -> int:
        return self.encoder_embedding.vocabulary_size

    @property
    def target_vocabulary_size(self) -> int:
        return self.decoder_embedding.vocabulary_size

    @property
    def max_source_length(self) -> int | None:
        """The learned source position table's size; None for sinusoidal positions."""
        return _position_limit(self.encoder_embedding)

    @property
    def max_target_length(self) -> int | None:
        """The learned target position table's size; None for sinusoidal positions."""
        return _position_limit(self.decoder_embedding)

    # --- decoding -------------------------------------------------------------

    def encode(self, encoder_token_ids):
        """The encoder pass of `call`, without dropout.

        Args:
            encoder_token_ids: int32 (B, S), 0 = padding.

        Returns:
            `(encoder_outputs, encoder_padding_mask)`: (B, S, D) and the
            boolean (B, S) `encoder_token_ids != 0`.
        """
        return self._encode(encoder_token_ids, training=False)

    def compute_cross_attention_cache(self, encoder_outputs):
        """The keys and values of every cross-attention, projected once per
        source: one pair of (B, H, S, Dh) per decoder block."""
        return self.decoder.compute_cross_attention_cache(encoder_outputs)

    def init_self_attention_cache(self, batch_size, max_length):
        """One pair of (B, H, max_length, Dh) zeros per decoder block."""
        return self.decoder.init_self_attention_cache(batch_size, max_length)

    def decode_step(
        self,
        token_ids,
        index,
        self_attention_cache,
        cross_attention_cache,
        encoder_padding_mask,
        self_attention_mask=None,
    ):
        """Next-token logits of K hypotheses per row, each one token at step `index`.

        The decoder pass of `call` with caches, without dropout: the tokens
        are embedded at target position `index`, their keys and values are
        written to the self-attention caches at cache positions
        `index * K ... index * K + K - 1`, and the head gives the logits.
        With K = 1 (greedy search, sampling) each token attends to the
        cache positions `<= index`, as the causal mask of `call` allows. With
        K > 1 (the beams of a row, sharing the row's cross-attention cache)
        `self_attention_mask` must say which cache positions each hypothesis
        attends to (see `keras_transformer.decoding.beam`).

        Args:
            token_ids: int32 (B, K), the hypotheses' tokens at step `index`.
            index: int32 scalar, the step (0 for the start token).
            self_attention_cache: pairs of (B, H, M * K, Dh) from
                `init_self_attention_cache(B, M * K)`, steps `< index` written.
            cross_attention_cache: from `compute_cross_attention_cache`.
            encoder_padding_mask: boolean (B, S) from `encode`.
            self_attention_mask: boolean (B, K, M * K), True where a
                hypothesis may attend; required when K > 1.

        Returns:
            `(logits, self_attention_cache)`: float32 (B, K, V) logits of the
            next tokens, and the caches with step `index` written.
        """
        if len(token_ids.shape) != 2:
            raise ValueError(
                "`decode_step` expects `token_ids` of shape (batch, hypotheses), one token "
                f"per hypothesis; received shape {tuple(token_ids.shape)}. For one token "
                "per row, pass `token_ids[:, None]`."
            )
        num_hypotheses = token_ids.shape[1]
        if num_hypotheses != 1 and self_attention_mask is None:
            raise ValueError(
                f"`decode_step` with {num_hypotheses} hypotheses per row needs a "
                "`self_attention_mask` (B, K, M * K) saying which cache positions "
                f"each attends to. Received token_ids of shape {tuple(token_ids.shape)}."
            )
        batch_size = ops.shape(token_ids)[0]
        # Each hypothesis is one target position: the embedding and the head see
        # (B * K, 1) rows, the decoder the K hypotheses of a row together. With
        # K = 1 the shapes already agree (no reshape in the exported loop).
        rows = token_ids if num_hypotheses == 1 else ops.reshape(token_ids, (-1, 1))
        x = self.decoder_embedding(rows, start_index=index)  # (B * K, 1, D)
        hidden_dim = x.shape[-1]
        if num_hypotheses != 1:
            x = ops.reshape(x, (batch_size, num_hypotheses, hidden_dim))  # (B, K, D)
        x, self_attention_cache = self.decoder(
            x,
            decoder_padding_mask=ops.not_equal(token_ids, 0),
            encoder_padding_mask=encoder_padding_mask,
            self_attention_cache=self_attention_cache,
            self_attention_cache_update_index=index * num_hypotheses,
            cross_attention_cache=cross_attention_cache,
            self_attention_mask=self_attention_mask,
        )  # (B, K, D)
        if num_hypotheses != 1:
            x = ops.reshape(x, (batch_size * num_hypotheses, 1, hidden_dim))  # (B * K, 1, D)
        logits = self._head(x)  # (B * K, 1, V)
        if num_hypotheses != 1:
            logits = ops.reshape(logits, (batch_size, num_hypotheses, logits.shape[-1]))
        return logits, self_attention_cache  # (B, K, V)

    def cross_attention_weights(self, encoder_token_ids, decoder_token_ids):
        """The decoder's cross-attention weights in the forward pass of `call`.

        Args:
            encoder_token_ids: int32 (B, S).
            decoder_token_ids: int32 (B, T), the start token then the target.

        Returns:
            float32 (B, L, H, T, S): how much the query predicting target
            token t attends to source token s, per decoder block and head.
        """
        encoder_outputs, encoder_padding_mask = self.encode(encoder_token_ids)
        x = self.decoder_embedding(decoder_token_ids)  # (B, T, D)
        _, weights = self.decoder(
            x,
            encoder_outputs,
            decoder_padding_mask=ops.not_equal(decoder_token_ids, 0),
            encoder_padding_mask=encoder_padding_mask,
            return_cross_attention_scores=True,
        )  # (B, L, H, T, S)
        return ops.cast(weights, "float32")

    def generate(
        self,
        encoder_token_ids,
        *,
        max_length: int,
        start_token_id: int,
        end_token_id: int | None,
        strategy: str = "greedy",
        **settings,
    ):
        """Translates a batch: token ids and their scores.

        Runs `keras_transformer.decoding`'s `greedy_search`, `beam_search` or
        `sample` on this model (one XLA-compiled loop over `decode_step`,
        compiled once per settings and input shape).

        Args:
            encoder_token_ids: int (B, S) source ids, 0 = padding.
            max_length: the most tokens per row, the end token included.
            start_token_id: the token that starts every target.
            end_token_id: the token that ends a target, or None.
            strategy: "greedy", "beam" or "sample".
            **settings: the search's other settings (`beam_size`,
                `length_penalty`, `return_all_beams`; `temperature`,
                `top_k`, `top_p`, `seed`).

        Returns:
            `(tokens, scores)`: int32 (B, T) ids, 0 after each end token, and
            float32 (B,) scores (see the searches).
        """
        from keras_transformer import decoding  # decoding builds on this module

        searches = {
            "greedy": decoding.greedy_search,
            "beam": decoding.beam_search,
            "sample": decoding.sample,
        }
        check_choice("strategy", strategy, set(searches))
        return searches[strategy](
            self,
            encoder_token_ids,
            start_token_id=start_token_id,
            end_token_id=end_token_id,
            max_length=max_length,
            **settings,
        )

    # --- precision ------------------------------------------------------------

    @property
    def parts_compute_dtype(self) -> str:
        """The dtype the embeddings and blocks compute in ("float32", or
        "bfloat16" under `mixed_bfloat16`); "mixed" if they differ."""
        parts = (self.encoder_embedding, self.encoder, self.decoder_embedding, self.decoder)
        dtypes = {part.compute_dtype for part in parts}
        return dtypes.pop() if len(dtypes) == 1 else "mixed"

    def float32_copy(self) -> "Seq2SeqTransformer":
        """This model computing in float32 everywhere, with a copy of its
        weights (float32 under a mixed policy, so nothing is rounded): what a
        model trained in mixed precision exports as where 16-bit math cannot
        run (TFLite) or should not (a reference decoding)."""
        def float32(value):
            if isinstance(value, dict):
                if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
                    return "float32"
                return {key: float32(item) for key, item in value.items()}
            if isinstance(value, list):
                return [float32(item) for item in value]
            return value

        copy = type(self).from_config(float32(self.get_config()))
        copy.set_weights(self.get_weights())
        return copy

    # --- serialization --------------------------------------------------------

    def get_config(self):
        shared = self.decoder_embedding is self.encoder_embedding
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder_embedding": keras.layers.serialize(self.encoder_embedding),
            "encoder": keras.layers.serialize(self.encoder),
            "decoder_embedding": None if shared else keras.layers.serialize(self.decoder_embedding),
            "decoder": keras.layers.serialize(self.decoder),
            "output_layers": [keras.layers.serialize(layer) for layer in self.output_layers],
            "tie_embeddings": self.tie_embeddings,
            "embedding_dropout": self.embedding_dropout,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for name in ("encoder_embedding", "encoder", "decoder"):
            config[name] = keras.layers.deserialize(config[name])
        if config["decoder_embedding"] is None:
            config["decoder_embedding"] = config["encoder_embedding"]
        else:
            config["decoder_embedding"] = keras.layers.deserialize(config["decoder_embedding"])
        config["output_layers"] = [
            keras.layers.deserialize(layer) for layer in config["output_layers"]
        ]
        return cls(**config)


def _position_limit(embedding) -> int | None:
    return embedding.sequence_length if embedding.position_encoding == "learned" else None


def build_seq2seq_transformer(
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    num_layers: int = 6,
    hidden_dim: int = 512,
    num_heads: int = 8,
    intermediate_dim: int = 2048,
    dropout: float = 0.1,
    max_sequence_length: int = 256,
    normalize_first: bool = False,
    tie_embeddings: bool = True,
    num_encoder_layers: int | None = None,
    num_decoder_layers: int | None = None,
    position_encoding: str = "sinusoidal",
    activation: str = "relu",
    layer_norm_epsilon: float = 1e-5,
    sinusoidal_layout: str = "interleaved",
    scale_embeddings: bool = True,
    use_output_bias: bool = False,
    share_embeddings: bool = False,
    name: str = "seq2seq_transformer",
) -> Seq2SeqTransformer:
    """Builds the Transformer of "Attention Is All You Need" from sizes (section 3).

    Defaults are the paper's base model (table 3): 6 + 6 layers, D = 512,
    8 heads, F = 2048, P_drop = 0.1, sinusoidal positions, post-norm, and the
    target embedding shared with the pre-softmax projection (section 3.4).

    Args:
        source_vocabulary_size: number of source token ids (0 = padding).
        target_vocabulary_size: V, number of target token ids (0 = padding).
        num_layers: blocks in the encoder and in the decoder.
        hidden_dim: D; must be divisible by `num_heads`.
        num_heads: H.
        intermediate_dim: F.
        dropout: P_drop, on embeddings, residuals and attention weights.
        max_sequence_length: the longest source or target sequence (the size
            of the learned position tables).
        normalize_first: pre-norm blocks with final LayerNorms.
        tie_embeddings: use the target embedding matrix as the output
            projection; otherwise a separate Dense layer named "logits".
        num_encoder_layers, num_decoder_layers: override `num_layers`.
        position_encoding: "sinusoidal" or "learned".
        activation: feed-forward activation ("relu" in the paper; Marian
            uses "silu", also called swish).
        layer_norm_epsilon: LayerNorm epsilon.
        sinusoidal_layout: "interleaved" (the paper) or "concatenated"
            (sines then cosines, as Marian); see `SinusoidalPositionEncoding`.
        scale_embeddings: multiply token embeddings by sqrt(D) (section 3.4).
        use_output_bias: with `tie_embeddings`, a learned (V,) bias on the
            logits (Marian's `final_logits_bias`).
        share_embeddings: one embedding table for source and target, which
            need the same vocabulary (`source_vocabulary_size ==
            target_vocabulary_size`), named "embedding": with
            `tie_embeddings` it is used three ways, as in Marian and
            section 3.4 of the paper.
        name: the model name.

    Returns:
        A `Seq2SeqTransformer` taking `{"encoder_token_ids": int32 (B, S),
        "decoder_token_ids": int32 (B, T)}` and returning float32 logits
        (B, T, V).

    Example:
    >>> model = build_seq2seq_transformer(100, 120, num_layers=1, hidden_dim=16,
    ...     num_heads=2, intermediate_dim=32)
    >>> ids = keras.ops.ones((2, 7), "int32")
    >>> model({"encoder_token_ids": ids, "decoder_token_ids": ids}).shape
    (2, 7, 120)

    Reference:
        Vaswani et al., 2017, section 3 and table 3.
    """
    num_encoder_layers = num_layers if num_encoder_layers is None else num_encoder_layers
    num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
    for arg_name, value in (
        ("source_vocabulary_size", source_vocabulary_size),
        ("target_vocabulary_size", target_vocabulary_size),
        ("num_layers", num_layers),
        ("hidden_dim", hidden_dim),
        ("num_heads", num_heads),
        ("intermediate_dim", intermediate_dim),
        ("max_sequence_length", max_sequence_length),
        ("num_encoder_layers", num_encoder_layers),
        ("num_decoder_layers", num_decoder_layers),
    ):
        check_positive_int(arg_name, value)
    check_rate("dropout", dropout)
    check_number("layer_norm_epsilon", layer_norm_epsilon, positive=True)
    check_choice("position_encoding", position_encoding, {"sinusoidal", "learned"})
    if use_output_bias and not tie_embeddings:
        raise ValueError(
            "`use_output_bias=True` adds a bias to the tied projection, so it needs "
            "`tie_embeddings=True` (the untied Dense layer has its own bias). Received "
            "tie_embeddings=False."
        )
    if share_embeddings and source_vocabulary_size != target_vocabulary_size:
        raise ValueError(
            "`share_embeddings=True` uses one table for both vocabularies, so "
            "`source_vocabulary_size` must equal `target_vocabulary_size`. Received "
            f"{source_vocabulary_size} and {target_vocabulary_size}."
        )
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. Received "
            f"hidden_dim={hidden_dim}, num_heads={num_heads}."
        )
    block_kwargs = {
        "num_heads": num_heads,
        "intermediate_dim": intermediate_dim,
        "dropout": dropout,
        "activation": activation,
        "layer_norm_epsilon": layer_norm_epsilon,
        "normalize_first": normalize_first,
    }
    embedding_kwargs = {
        "sequence_length": max_sequence_length,
        "embedding_dim": hidden_dim,
        "position_encoding": position_encoding,
        "sinusoidal_layout": sinusoidal_layout,
        "scale_embeddings": scale_embeddings,
    }
    output_layers = []
    if not tie_embeddings:
        output_layers = [keras.layers.Dense(target_vocabulary_size, dtype="float32", name="logits")]
    # Built in this order (encoder embedding, encoder, decoder embedding,
    # decoder): each layer draws its initializers' seeds when constructed, so a
    # seeded run gets the same weights as before `share_embeddings` existed.
    encoder_embedding = TokenAndPositionEmbedding(
        source_vocabulary_size,
        name="embedding" if share_embeddings else "encoder_embedding",
        use_output_bias=use_output_bias and share_embeddings,
        **embedding_kwargs,
    )
    encoder = TransformerEncoder(num_encoder_layers, name="encoder", **block_kwargs)
    decoder_embedding = encoder_embedding
    if not share_embeddings:
        decoder_embedding = TokenAndPositionEmbedding(
            target_vocabulary_size, name="decoder_embedding", use_output_bias=use_output_bias,
            **embedding_kwargs,
        )
    return Seq2SeqTransformer(
        encoder_embedding=encoder_embedding,
        encoder=encoder,
        decoder_embedding=decoder_embedding,
        decoder=TransformerDecoder(num_decoder_layers, name="decoder", **block_kwargs),
        output_layers=output_layers,
        tie_embeddings=tie_embeddings,
        embedding_dropout=dropout,
        name=name,
    )
