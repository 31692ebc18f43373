"""Named training recipes and the JSON config of a run directory."""

import dataclasses
import json
from pathlib import Path

from keras_transformer.checks import check_choice, check_number, check_positive_int, check_rate
from keras_transformer.data import TOKENIZERS, check_batch_tokens
from keras_transformer.data.tokenizers import check_vocabulary_size
from keras_transformer.layers.sinusoidal_position_encoding import SINUSOIDAL_LAYOUTS
from keras_transformer.training.precision import DTYPE_POLICIES

_POSITIVE_INTS = (
    "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "max_sequence_length",
    "batch_size", "epochs", "warmup_steps", "backup_steps", "beam_size",
)
_BOOLS = (
    "normalize_first", "tie_embeddings", "lowercase", "scale_embeddings", "use_output_bias",
    "share_embeddings",
)
# Feed-forward activations a config may name: the paper's ReLU, and those
# of imported checkpoints (Marian's "swish" is SiLU).
ACTIVATIONS = ("relu", "gelu", "silu")


@dataclasses.dataclass
class TranslationConfig:
    """Everything a translation run needs to rebuild its model and data.

    Model fields are the arguments of `build_seq2seq_transformer`; the rest
    describe the vocabularies, the input pipeline and the optimizer.
    `tokenizer` is "wordpiece" or "sentencepiece" (see
    `keras_transformer.data.vocabularies`); config files written before it
    existed mean "wordpiece". Every
    field is checked on creation: a wrong type or value raises a ValueError
    naming the field, the value received and what is expected.

    `activation`, `sinusoidal_layout`, `scale_embeddings`, `use_output_bias`
    and `share_embeddings` describe imported checkpoints (see
    `keras_transformer.convert`); their defaults are the paper's model, so
    a config file written before they existed builds the same model.

    `dtype_policy` is the Keras dtype policy of the model ("float32",
    "mixed_bfloat16", or "auto" for the faster of the two on the machine
    that starts the run; see `keras_transformer.training.resolve_dtype_policy`).
    """

    num_layers: int = 3
    hidden_dim: int = 256
    num_heads: int = 4
    intermediate_dim: int = 1024
    dropout: float = 0.1
    normalize_first: bool = False
    tie_embeddings: bool = True
    position_encoding: str = "sinusoidal"
    activation: str = "relu"
    sinusoidal_layout: str = "interleaved"
    scale_embeddings: bool = True
    use_output_bias: bool = False
    share_embeddings: bool = False
    max_sequence_length: int = 64
    source_vocabulary_size: int = 8000
    target_vocabulary_size: int = 8000
    lowercase: bool = False
    tokenizer: str = "wordpiece"
    batch_size: int = 64
    # Batches by token count instead of `batch_size` sentences when set: about
    # this many padded positions of max(S, T) per batch, like fairseq's
    # --max-tokens (see `make_dataset`).
    batch_tokens: int | None = None
    epochs: int = 10
    warmup_steps: int = 4000
    learning_rate_scale: float = 1.0
    # Momentum of an exponential moving average of the weights, which the
    # trained model ends with (Polyak averaging); 0 trains without one.
    ema_momentum: float = 0.0
    label_smoothing: float = 0.1
    # Steps between two backups of the training state within an epoch (one
    # is also made after every epoch): a SIGKILL loses at most this many.
    backup_steps: int = 200
    beam_size: int = 4
    length_penalty: float = 0.6
    seed: int = 1234
    # The Keras dtype policy the model is built, trained and saved with
    # (config.json records the one "auto" resolved to).
    dtype_policy: str = "float32"

    def __post_init__(self):
        for name in _POSITIVE_INTS:
            check_positive_int(name, getattr(self, name))
        for name in ("source_vocabulary_size", "target_vocabulary_size"):
            check_vocabulary_size(name, getattr(self, name))
        check_batch_tokens(self.batch_tokens, self.max_sequence_length)
        check_rate("dropout", self.dropout)
        check_rate("label_smoothing", self.label_smoothing)
        check_rate("ema_momentum", self.ema_momentum)
        check_choice("position_encoding", self.position_encoding, {"sinusoidal", "learned"})
        check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("sinusoidal_layout", self.sinusoidal_layout, SINUSOIDAL_LAYOUTS)
        check_choice("dtype_policy", self.dtype_policy, DTYPE_POLICIES)
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"`{name}` must be true or false. Received: {name}={getattr(self, name)!r}"
                )
        check_number("learning_rate_scale", self.learning_rate_scale, positive=True)
        check_number("length_penalty", self.length_penalty, meaning="alpha, 0.6 in the paper")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"`seed` must be an integer. Received: seed={self.seed!r}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                "`hidden_dim` must be divisible by `num_heads`. Received "
                f"hidden_dim={self.hidden_dim}, num_heads={self.num_heads}."
            )

    def model_kwargs(self) -> dict:
        """The keyword arguments of `build_seq2seq_transformer`."""
        names = (
            "num_layers", "hidden_dim", "num_heads", "intermediate_dim", "dropout",
            "normalize_first", "tie_embeddings", "position_encoding", "max_sequence_length",
            "activation", "sinusoidal_layout", "scale_embeddings", "use_output_bias",
            "share_embeddings",
        )
        return {name: getattr(self, name) for name in names}

    def optimizer_kwargs(self) -> dict:
        """The keyword arguments of `keras_transformer.training.transformer_adam`."""
        kwargs = {
            "hidden_dim": self.hidden_dim,
            "warmup_steps": self.warmup_steps,
            "scale": self.learning_rate_scale,
        }
        if self.ema_momentum:
            kwargs.update(use_ema=True, ema_momentum=self.ema_momentum)
        return kwargs

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TranslationConfig":
        """Builds a config, rejecting unknown keys with the list of known ones."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown config keys {unknown}. Known keys: {sorted(known)}."
            )
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None


RECIPES = {
    # The embedded generated corpus: short sentences, small vocabulary; a few
    # minutes on two CPU cores. The test split is from the same grammar, so
    # there is nothing to regularize: no dropout, and small batches for more
    # updates, which the rare short "Je suis étudiant." sentences need. The
    # model ends with the moving average of its weights over about the last
    # 1000 of its ~7200 steps: the same run (seed 1234, one core) scored BLEU
    # 97.1 with its last weights, one sentence repeating "the yellow", and
    # 99.96 with the average.
    "tiny": TranslationConfig(
        num_layers=2, hidden_dim=128, num_heads=4, intermediate_dim=512, dropout=0.0,
        max_sequence_length=32, source_vocabulary_size=2000, target_vocabulary_size=2000,
        batch_size=32, epochs=4, warmup_steps=1000, learning_rate_scale=1.0,
        ema_momentum=0.999,
    ),
    # Multi30k-sized corpora on CPU: the small model. A CPU run sees a
    # few thousand steps, so warm-up is 1000 steps rather than the paper's 4000
    # (which assumed 100,000 steps), and the learning rate is still near its
    # peak when the budget ends: the model ends with the moving average of its
    # weights over the last ~100 steps rather than the last, noisy step
    # (+4.6 BLEU on Multi30k in 25 minutes, docs/performance.md). It trains in
    # bfloat16 where the CPU has bfloat16 matmuls ("auto"): on Multi30k, 1.36x
    # the steps of float32 in 25 minutes with the same validation BLEU per step.
    "small": TranslationConfig(warmup_steps=1000, ema_momentum=0.99, dtype_policy="auto"),
    # The paper's base model (table 3).
    "base": TranslationConfig(
        num_layers=6, hidden_dim=512, num_heads=8, intermediate_dim=2048,
        max_sequence_length=128, source_vocabulary_size=16000,
        target_vocabulary_size=16000, batch_size=32,
    ),
}


def resolve_config(name_or_path: str, overrides: dict | None = None) -> TranslationConfig:
    """A recipe name ("tiny", "small", "base") or a JSON file of overrides.

    A JSON file may name a recipe to start from under "recipe" (default
    "small"); its other keys override that recipe's fields.
    """
    if name_or_path in RECIPES:
        values = dataclasses.asdict(RECIPES[name_or_path])
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(
                f"--config must be one of {sorted(RECIPES)} or a JSON file; "
                f"received {name_or_path!r}, which is neither."
            )
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a valid JSON config ({error}).") from None
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{path}: expected a JSON object, received {type(loaded).__name__}."
            )
        recipe = loaded.pop("recipe", "small")
        if recipe not in RECIPES:
            raise ValueError(
                f"{path}: unknown recipe {recipe!r}; expected one of {sorted(RECIPES)}."
            )
        values = {**dataclasses.asdict(RECIPES[recipe]), **loaded}
    values.update(overrides or {})
    return TranslationConfig.from_dict(values, source=str(name_or_path))
