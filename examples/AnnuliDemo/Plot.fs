/// Figures of the demo, with ScottPlot.
module AnnuliDemo.Plot

open ScottPlot

/// Trajectories (one line per point, projected on two state coordinates), coloured by class, with the end points
/// marked. `paths[i]` is the list of (x, y) of point i over depth; `labels[i]` its class (0 or 1).
let trajectories (title: string) (xLabel: string) (yLabel: string) (paths: (float * float)[][]) (labels: int64[]) (file: string) =
    let plot = Plot()
    let colours = [| Colors.OrangeRed; Colors.RoyalBlue |]
    for i in 0 .. paths.Length - 1 do
        let xs = paths[i] |> Array.map fst
        let ys = paths[i] |> Array.map snd
        let line = plot.Add.ScatterLine(xs, ys)
        line.Color <- colours[int labels[i]].WithAlpha(0.35)
        line.LineWidth <- 1.0f
        let last = plot.Add.Marker(xs[xs.Length - 1], ys[ys.Length - 1])
        last.Color <- colours[int labels[i]]
        last.Size <- 4.0f
    plot.Title(title)
    plot.XLabel(xLabel)
    plot.YLabel(yLabel)
    plot.SavePng(file, 900, 700) |> ignore
