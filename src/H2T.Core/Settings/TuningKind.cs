namespace H2T.Settings;

/// <summary>
/// Which part of a pretrained backbone trains in stage I: everything (<c>full</c>), nothing (<c>frozen</c>: a linear
/// probe), or a parameter-efficient part of it. Each kind is named with its paper; the classifier always trains.
/// </summary>
public enum TuningKind
{
    /// <summary>Every backbone parameter trains (the heavy fine-tune).</summary>
    Full,
    /// <summary>No backbone parameter trains: the classifier learns on frozen features (linear probing).</summary>
    Frozen,
    /// <summary>BitFit (Ben Zaken et al., ACL 2022): only the biases train (BatchNorm's shift included).</summary>
    Bias,
    /// <summary>Only the normalisation layers' scale and shift train (BatchNorm: Frankle et al., ICLR 2021, its
    /// statistics re-estimated; LayerNorm: the LN-tuning of the PEFT surveys).</summary>
    Norm,
    /// <summary>SSF (Lian et al., NeurIPS 2022): a learnt per-channel scale and shift after every normalisation and
    /// linear layer, merged into that layer's weights when the model is opened for inference.</summary>
    Ssf,
    /// <summary>AdaptFormer (Chen et al., NeurIPS 2022), LIFT's default: a bottleneck adapter beside each ViT
    /// block's MLP.</summary>
    AdaptFormer,
    /// <summary>LoRA (Hu et al., ICLR 2022): low-rank updates of each ViT block's query and value
    /// projections.</summary>
    Lora,
    /// <summary>VPT-shallow (Jia et al., ECCV 2022): learnt prompt tokens prepended to the first ViT block.</summary>
    VptShallow,
    /// <summary>VPT-deep: fresh learnt prompt tokens at every ViT block.</summary>
    VptDeep,
}

/// <summary>The tuning kinds' names (flags and YAML read this table); what each does is H2T.Models.Tuning's.</summary>
public static class TuningNames
{
    /// <summary>Names for flags and YAML alike.</summary>
    public static NameTable<TuningKind> Names { get; } = new("tuning",
    [
        ("full", TuningKind.Full), ("frozen", TuningKind.Frozen), ("linear-probe", TuningKind.Frozen),
        ("bias", TuningKind.Bias), ("bitfit", TuningKind.Bias), ("norm", TuningKind.Norm), ("bn", TuningKind.Norm),
        ("ln", TuningKind.Norm), ("ssf", TuningKind.Ssf), ("adaptformer", TuningKind.AdaptFormer),
        ("lora", TuningKind.Lora), ("vpt-shallow", TuningKind.VptShallow), ("vpt", TuningKind.VptShallow),
        ("vpt-deep", TuningKind.VptDeep),
    ], "full, frozen, bias, norm, ssf (any backbone); adaptformer, lora, vpt-shallow, vpt-deep (ViT backbones)");

    /// <summary>The canonical name of a kind.</summary>
    public static string Name(TuningKind kind) => kind switch
    {
        TuningKind.VptShallow => "vpt-shallow",
        TuningKind.VptDeep => "vpt-deep",
        _ => kind.ToString().ToLowerInvariant(),
    };

    /// <summary>Whether the kind adds modules a ViT must provide.</summary>
    public static bool NeedsTokens(TuningKind kind) =>
        kind is TuningKind.AdaptFormer or TuningKind.Lora or TuningKind.VptShallow or TuningKind.VptDeep;
}
