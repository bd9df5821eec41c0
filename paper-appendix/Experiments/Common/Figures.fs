/// Figures with ScottPlot: titled, labelled axes, a legend where there are several series, PNG at 900×650.
module Appendix.Figures

open ScottPlot

/// One series: points, a legend label ("" for none), a colour, a line width (0: markers only).
type Series = { X: float[]; Y: float[]; Label: string; Color: Color; Width: float32 }

/// A series.
let series x y label color width = { X = x; Y = y; Label = label; Color = color; Width = width }

/// The two class colours used throughout.
let classColors = [| Colors.OrangeRed; Colors.RoyalBlue |]

/// Draws `all` into one plot and saves it as `file`.
let save (file: string) (title: string) (xLabel: string) (yLabel: string) (all: Series list) =
    let plot = Plot()
    for s in all do
        if s.Width > 0.0f then
            let line = plot.Add.ScatterLine(s.X, s.Y)
            line.Color <- s.Color
            line.LineWidth <- s.Width
            if s.Label <> "" then line.LegendText <- s.Label
        else
            let points = plot.Add.ScatterPoints(s.X, s.Y)
            points.Color <- s.Color
            points.MarkerSize <- 5.0f
            if s.Label <> "" then points.LegendText <- s.Label
    plot.Title(title)
    plot.XLabel(xLabel)
    plot.YLabel(yLabel)
    if all |> List.exists (fun s -> s.Label <> "") then plot.ShowLegend(Alignment.UpperRight) |> ignore
    plot.SavePng(file, 900, 650) |> ignore

/// Grouped bars: for each category (named on the x axis), one bar per series (label, values, colour).
let bars (file: string) (title: string) (yLabel: string) (categories: string[]) (groups: (string * float[] * Color) list) =
    let plot = Plot()
    let width = 0.8 / float groups.Length
    groups |> List.iteri (fun j (label, values, color) ->
        let bars =
            values |> Array.mapi (fun i v ->
                let bar = Bar()
                bar.Position <- float i + (float j - float (groups.Length - 1) / 2.0) * width
                bar.Value <- v
                bar.Size <- width * 0.9
                bar.FillColor <- color
                bar)
        let plottable = plot.Add.Bars(bars)
        plottable.LegendText <- label)
    plot.Axes.Bottom.SetTicks(Array.init categories.Length float, categories)
    plot.Axes.Margins(bottom = 0.0) |> ignore
    plot.Title(title)
    plot.YLabel(yLabel)
    plot.ShowLegend(Alignment.UpperLeft) |> ignore
    plot.SavePng(file, 900, 650) |> ignore
