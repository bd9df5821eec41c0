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

/// One panel of grouped bars: for each category (named on the x axis), one bar per group (label, values, colour),
/// each bar labelled with its value by `format`.
type BarPanel =
    { Title: string; YLabel: string; Categories: string[]; Groups: (string * float[] * Color) list; Format: float -> string }

/// A panel of grouped bars.
let barPanel title yLabel categories groups format =
    { Title = title; YLabel = yLabel; Categories = categories; Groups = groups; Format = format }

/// Draws a panel into `plot`: the bars of a category side by side, values above them, the legend under the axes (out
/// of the bars' way).
let private drawBars (plot: Plot) (panel: BarPanel) =
    let count = panel.Groups.Length
    let width = 0.8 / float count
    panel.Groups |> List.iteri (fun j (label, values, color) ->
        let bars =
            values |> Array.mapi (fun i v ->
                let bar = Bar()
                bar.Position <- float i + (float j - float (count - 1) / 2.0) * width
                bar.Value <- v
                bar.Size <- width * 0.9
                bar.FillColor <- color
                bar.Label <- panel.Format v
                bar)
        let plottable = plot.Add.Bars(bars)
        plottable.ValueLabelStyle.FontSize <- 13.0f
        plottable.LegendText <- label)
    plot.Axes.Bottom.SetTicks(Array.init panel.Categories.Length float, panel.Categories)
    plot.Axes.Bottom.TickLabelStyle.FontSize <- 14.0f
    // Room above the tallest bar for its label; bars start at 0.
    plot.Axes.Margins(bottom = 0.0, top = 0.12) |> ignore
    plot.Title(panel.Title)
    plot.YLabel(panel.YLabel)
    plot.ShowLegend(Edge.Bottom) |> ignore

/// Grouped bars in one figure, saved as `file` (900 × 650).
let bars (file: string) (panel: BarPanel) =
    let plot = Plot()
    drawBars plot panel
    plot.SavePng(file, 900, 650) |> ignore

/// Panels of grouped bars side by side in one figure, saved as `file` (700 × 650 a panel).
let barPanels (file: string) (panels: BarPanel list) =
    let plots = panels |> List.map (fun panel -> let plot = Plot() in drawBars plot panel; plot)
    let figure = Multiplot(List.head plots)
    for plot in List.tail plots do figure.AddPlot plot
    figure.Layout <- MultiplotLayouts.Columns()
    figure.SavePng(file, 700 * panels.Length, 650) |> ignore
