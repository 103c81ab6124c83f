using H2T.Runs;
using H2T.Settings;

namespace H2T.Training;

/// <summary>One classifier a stage-II run trains: what its sweep varied (empty for a single run), its run folder (the
/// caller holds its lock) and its whole config.</summary>
public sealed record StageTwoMember(IReadOnlyList<SweptSetting> Swept, RunFolder Run, StageTwoConfig Config)
{
    /// <summary>The member's name in tables and logs: its swept settings, or its rho for a single run.</summary>
    public string Label => SweepPoint.LabelOf(Swept, Config);
}

/// <summary>
/// The members a stage-II run trains together on one feature source. They may differ in their own settings (rho,
/// fusion and its options, classifier, loss, lr, weight decay) and must agree on what the source and the epoch loop
/// read (<see cref="StageTwoConfig.SharedSettings"/>), which the constructor checks.
/// </summary>
public sealed class StageTwoPlan
{
    public StageTwoPlan(IReadOnlyList<StageTwoMember> members)
    {
        ArgumentNullException.ThrowIfNull(members);
        if (members.Count == 0) throw new ArgumentException("stage II needs at least one member", nameof(members));
        Members = members;
        Shared = members[0].Config;
        foreach (var m in members.Skip(1))
        {
            var differ = Shared.SharedDifferences(m.Config);
            if (differ.Count > 0)
                throw new ConfigException(
                    $"stage-II member {m.Label} differs from {members[0].Label} in {string.Join(", ", differ)}: " +
                    $"members share the " +
                                          "feature source and the epoch loop, so only their own settings may vary",
                                              differ[0]);
        }
    }

    public IReadOnlyList<StageTwoMember> Members { get; }

    /// <summary>The settings every member shares: the first member's config, of which only the shared part is
    /// read.</summary>
    public StageTwoConfig Shared { get; }
}
