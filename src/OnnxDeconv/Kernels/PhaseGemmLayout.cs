using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// Phases that share one output grid (the same pixel count on every axis), so one packed input panel per pixel block
/// serves all of them: the panel holds every distinct input shift any tap of any of them reads.
/// </summary>
internal sealed class PhaseStack
{
    /// <summary>The phases (indices into <see cref="DeconvPlan.AllResidues"/>), in packing order.</summary>
    public required Residue[] Phases { get; init; }
    /// <summary>Grid size per axis (the same for every phase of the stack).</summary>
    public required int[] Q { get; init; }
    public required int Pixels { get; init; }
    /// <summary>[shift * rank + axis]: input index of grid position 0 on that axis (M0 - c; may be negative).</summary>
    public required int[] Shift { get; init; }
    public int ShiftCount => Shift.Length / Q.Length;
    /// <summary>[phase][tap]: the shift the tap reads.</summary>
    public required int[][] TapShift { get; init; }
    /// <summary>Per phase: output offset of its grid position 0 in one channel plane.</summary>
    public required int[] PhaseOut { get; init; }
    /// <summary>
    /// One output channel: runs (first phase, count) of consecutive phases with the same taps and shifts, computed
    /// together with phases as the micro-kernel's rows (<see cref="PhaseRowsKernel{TS, TV}"/>).
    /// </summary>
    public (int First, int Count)[] Runs { get; init; } = [];
    /// <summary>
    /// The stack's phases as groups of the last axis's s phases that share every other axis's origin, ordered by their
    /// first output on the last axis (0..s-1): a group's tiles interleave into contiguous output runs (k2 s3 writes each
    /// output line once instead of s strided passes). Null when the stack does not hold whole groups.
    /// </summary>
    public int[][]? RowGroups { get; init; }
    /// <summary>Pixel blocks of this stack, and the first work item of its blocks (per image and group).</summary>
    public required int Blocks { get; init; }
    public required int FirstBlock { get; init; }
}

/// <summary>
/// The phase-GEMM path's layout (<see cref="PhaseGemmJob{TS, TV}"/>): each phase is a GEMM (output channels x input
/// channels*taps x pixels) over an implicit im2col panel packed once per pixel block for every phase of its
/// <see cref="PhaseStack"/>, run by the register-blocked <see cref="MicroKernel{TS, TV}"/> and stored through the
/// phase interleave with bias and epilogue. Taken where the general path's per-phase direct/border walk loses most: one
/// tap per phase on short rows (3D k2 s2 on 8^3, k2 s3) and one output channel (the phases then share the panel).
/// </summary>
internal sealed class PhaseGemmLayout
{
    public PhaseStack[] Stacks { get; }
    /// <summary>Pixels per block (<see cref="Nr"/> vectors) and output channels per micro-kernel call.</summary>
    public int PixelBlock { get; }
    public int Nr { get; }
    public int Mr { get; }
    /// <summary>Input channels per packed slice (the panel is slice x shifts x block).</summary>
    public int CiSlice { get; }
    public int MaxShifts { get; }
    public int MaxPhases { get; }
    /// <summary>Several slices: the tile keeps every phase's partial sums; one slice: one phase's tile at a time.</summary>
    public bool TileAllPhases => CiSlice < _cig || PhaseRows;
    /// <summary>One output channel: phases are the micro-kernel's rows (<see cref="PhaseStack.Runs"/>).</summary>
    public bool PhaseRows { get; }
    public long PanelFloats { get; }
    public long TileFloats { get; }
    public long ScratchFloats => PanelFloats + TileFloats + 16;
    public int IntsNeeded { get; }
    /// <summary>Work items per (image, group): every block of every stack.</summary>
    public int ItemsPerImageGroup { get; }

    private readonly int _cig;

    private PhaseGemmLayout(PhaseStack[] stacks, int nr, int mr, int lanes, int cig, int cog, int rank, int maxTaps)
    {
        _cig = cig;
        Stacks = stacks;
        PhaseRows = cog == 1;
        Nr = nr;
        Mr = mr;
        PixelBlock = nr * lanes;
        MaxShifts = stacks.Max(s => s.ShiftCount);
        MaxPhases = stacks.Max(s => s.Phases.Length);
        // The panel slice stays within ~16 KB of L1 while the micro-kernel sweeps every phase and channel block over it.
        CiSlice = Math.Clamp(4096 / (MaxShifts * PixelBlock), 1, cig);
        PanelFloats = (long)CiSlice * MaxShifts * PixelBlock;
        // One slice: the tiles of one row group (s phases) at a time, stored interleaved; several: every phase's.
        int groupTiles = stacks.Where(st => st.RowGroups is not null).Select(st => st.RowGroups![0].Length).DefaultIfEmpty(1).Max();
        TileFloats = (TileAllPhases ? MaxPhases : groupTiles) * (long)cog * PixelBlock;
        // Per block: each pixel's output offset, the row segments' starts and grid positions; the shifts' offsets
        // into x (direct blocks); one phase's tap offsets.
        IntsNeeded = PixelBlock * (2 + rank) + 1 + MaxShifts + maxTaps;
        ItemsPerImageGroup = stacks.Sum(s => s.Blocks);
    }

    /// <summary>
    /// Groups of s phases (s = the last axis's stride) with equal origins on the leading axes and last-axis origins
    /// 0..s-1, covering every phase of the stack; null when the phases do not form such groups (or s is 1).
    /// </summary>
    private static int[][]? RowGroupsOf(Residue[] phases, int s)
    {
        if (s < 2 || phases.Length % s != 0) return null;
        int last = phases[0].O0.Length - 1;
        var groups = new List<int[]>();
        foreach (var lead in Enumerable.Range(0, phases.Length).GroupBy(i => string.Join(",", phases[i].O0.Take(last))))
        {
            var members = lead.OrderBy(i => phases[i].O0[last]).ToArray();
            if (members.Length != s) return null;
            for (int k = 0; k < s; k++)
                if (phases[members[k]].O0[last] != k) return null;
            groups.Add(members);
        }
        return [.. groups];
    }

    /// <summary>The phase-GEMM layout when this path is taken for <paramref name="g"/>, else null.</summary>
    public static PhaseGemmLayout? TryCreate(ConvTransposeGeometry g, Residue[] all, int[] outStride, int cig, int cog, KernelIsa isa, int lanes)
    {
        var work = all.Where(r => r.Pixels > 0).ToArray();
        if (work.Length == 0) return null;
        int maxTaps = work.Max(r => r.Taps);
        long outputFloats = g.Batch * g.OutChannels * g.Axes.Aggregate(1L, (p, a) => p * a.Output);
        // One tap per phase (k <= s): every phase is a plain GEMM; the general path's border and fusion machinery
        // only costs on rows shorter than 16 (an AVX-512 vector; the same choice on every ISA) (3D U-Net 256->256 k2 s2 8^3: 37 -> 6.2 ms, 86 GFLOP/s) and where
        // the stride exceeds the kernel (k2 s3: 4.0 -> 1.85 ms). Rows of a vector or more (3D 16^3: 13.6 vs 17.4 ms,
        // 2D U-Net) stay on the fused path, which reads x in place.
        bool oneTap = maxTaps <= 1 && (work[0].Q[^1] < 16 || g.Axes.Any(a => a.Stride > a.Kernel));
        // One output channel, 1D: the phases are the micro-kernel's rows over one shared panel (ISTFT 1026->1 k1024
        // s256: 27 -> 2.6 ms; Conv-TasNet 512->1 k16 s8: 1.49 -> 0.70 ms). 2D one-channel layers (FSRCNN k9) measured
        // slower here (0.82 -> 1.97 ms): their 25 shifts make packing dominate; they stay on the fused path.
        bool oneChannel = cog == 1 && g.Group == 1 && g.Rank == 1;
        if (!oneTap && !oneChannel) return null;

        (int nr, int mr) = isa switch
        {
            KernelIsa.Avx512 => cog <= 4 ? (4, cog) : (2, 12),
            KernelIsa.Scalar => (4, Math.Min(cog, 6)),
            _ => cog <= 4 ? (3, cog) : (2, 6),
        };
        int block = nr * lanes;
        var stacks = new List<PhaseStack>();
        int firstBlock = 0;
        foreach (var grp in work.GroupBy(r => string.Join(",", r.Q)))
        {
            var phases = grp.ToArray();
            int rank = g.Rank;
            var shifts = new List<int[]>();
            var tapShift = new int[phases.Length][];
            for (int p = 0; p < phases.Length; p++)
            {
                var res = phases[p];
                tapShift[p] = new int[res.Taps];
                for (int t = 0; t < res.Taps; t++)
                {
                    var e = new int[rank];
                    for (int a = 0; a < rank; a++) e[a] = res.M0[a] - res.TapC[t * rank + a];
                    int idx = shifts.FindIndex(s => s.AsSpan().SequenceEqual(e));
                    if (idx < 0) { idx = shifts.Count; shifts.Add(e); }
                    tapShift[p][t] = idx;
                }
            }
            if (shifts.Count == 0) shifts.Add(new int[rank]); // bias-only phases still need a (zero) panel row
            var phaseOut = phases.Select(res =>
            {
                int o = 0;
                for (int a = 0; a < rank; a++) o += res.O0[a] * outStride[a];
                return o;
            }).ToArray();
            int pixels = phases[0].Pixels;
            int blocks = (pixels + block - 1) / block;
            var runs = new List<(int, int)>();
            for (int p = 0; p < phases.Length;)
            {
                // A run: same tap shifts, weights one phase block apart (one channel: taps * cig floats per phase).
                int e = p + 1;
                while (e < phases.Length && e - p < PhaseRowsKernel<ScalarOps, float>.MaxRows
                    && tapShift[e].AsSpan().SequenceEqual(tapShift[p])
                    && phases[e].WeightOffset - phases[e - 1].WeightOffset == (long)phases[p].Taps * cig) e++;
                runs.Add((p, e - p));
                p = e;
            }
            stacks.Add(new PhaseStack
            {
                Phases = phases, Q = phases[0].Q, Pixels = pixels, Shift = shifts.SelectMany(s => s).ToArray(),
                TapShift = tapShift, PhaseOut = phaseOut, Blocks = blocks, FirstBlock = firstBlock, Runs = [.. runs],
                RowGroups = RowGroupsOf(phases, (int)g.Axes[^1].Stride),
            });
            firstBlock += blocks;
        }
        var layout = new PhaseGemmLayout([.. stacks], nr, mr, lanes, cig, cog, g.Rank, Math.Max(1, maxTaps));
        // Many distinct shifts (long kernels on several axes with one channel) make the panel mostly copies: leave those.
        if (layout.MaxShifts > 64) return null;
        // The workspace target: scratch within the output's size.
        return layout.ScratchFloats <= Math.Max(outputFloats, 1 << 14) ? layout : null;
    }
}
