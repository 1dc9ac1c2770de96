Attribute VB_Name = "FactorLassoRibbon"
' FactorLassoRibbon: the callbacks of the "Factor LASSO" ribbon tab of factorlasso_template.xlsm.
'
' Source of truth: workbook_template/src/FactorLassoRibbon.bas in the xl-factorlasso repository.
' workbook_template/build.py compiles it into xl/vbaProject.bin; the tab itself is
' workbook_template/src/customUI14.xml, whose onAction attributes name the Subs below.
'
' How Python is called
'   Application.Run "'xlwings.xlam'!RunPython", "import xl_factorlasso.ribbon as r; r.refit_caller()"
' runs RunPython of the xlwings add-in, which `xlwings addin install` copies into Excel's startup
' folder (XLSTART on Windows, Excel's Startup folder on macOS), where Excel opens it as
' "xlwings.xlam" each time it starts.
' Calling it by name needs no VBA reference to the add-in. A reference (Tools > References >
' xlwings) stores the path of xlwings.xlam on the machine that made the workbook; where it does
' not resolve, Excel marks it MISSING, this project no longer compiles and every button fails
' with "Can't find project or library", Help included. By name, a missing add-in is one error
' that RunEntryPoint turns into installation instructions.
' RunPython works on the active workbook, which is this one when its tab is clicked:
' xw.Book.caller() in Python is this workbook, and RunPython reads this workbook's "xlwings.conf"
' sheet (UDF Modules; add Interpreter_Win / Interpreter_Mac rows there to choose the Python).
' The Python entry points are in xl_factorlasso/ribbon.py (refit_caller, refit_cv_caller,
' optimise_portfolio_caller, backtest_caller, clear_outputs_caller); each reports its result or the problem in
' an alert and writes nothing when the inputs are not valid.
Option Explicit

Private Const RUN_PYTHON As String = "'xlwings.xlam'!RunPython"
Private Const TITLE As String = "xl-factorlasso"

Public Sub Refit(control As IRibbonControl)
    RunEntryPoint "refit_caller"
End Sub

Public Sub CrossValidate(control As IRibbonControl)
    RunEntryPoint "refit_cv_caller"
End Sub

Public Sub OptimisePortfolio(control As IRibbonControl)
    RunEntryPoint "optimise_portfolio_caller"
End Sub

Public Sub Backtest(control As IRibbonControl)
    ' a long job: Python shows its progress in the status bar and gives the bar back at the end
    RunEntryPoint "backtest_caller"
End Sub

Public Sub ClearOutputs(control As IRibbonControl)
    If MsgBox("Clear every FL_* output range of this workbook?", vbOKCancel + vbQuestion, TITLE) = vbOK Then
        RunEntryPoint "clear_outputs_caller"
    End If
End Sub

Public Sub ShowHelp(control As IRibbonControl)
    On Error Resume Next
    ThisWorkbook.Worksheets("Start").Activate
    On Error GoTo 0
    MsgBox "Refit: fit the factor model on FL_RETURNS and FL_FACTORS with FL_SETTINGS." & vbCr & _
           "Cross-validate: choose reg_lambda by expanding-window cross-validation, then refit." & vbCr & _
           "Optimise portfolio: maximum-diversification weights from FL_PORTFOLIO_SETTINGS." & vbCr & _
           "Backtest: refit and re-optimise at every date of FL_ROLLING_SETTINGS (progress in " & _
           "the status bar)." & vbCr & _
           "Clear outputs: empty every FL_* output range." & vbCr & vbCr & _
           "Yellow cells are inputs, blue headers are outputs. The Start sheet explains the " & _
           "workbook; the Formulas sheet shows the =FLASSO_* worksheet functions." & vbCr & vbCr & _
           "Needs Python with the xl-factorlasso package, installed from its wheel file (it is " & _
           "not on PyPI): pip install xl_factorlasso-<version>-py3-none-any.whl, and the xlwings " & _
           "add-in: xlwings addin install. The Start sheet has the steps.", vbInformation, TITLE
End Sub

Private Sub RunEntryPoint(ByVal entryPoint As String)
    On Error GoTo Failed
    Application.Run RUN_PYTHON, "import xl_factorlasso.ribbon as r; r." & entryPoint & "()"
    Exit Sub
Failed:
    MsgBox "Could not run xl-factorlasso through the xlwings add-in:" & vbCr & Err.Description & _
           vbCr & vbCr & "Install it once from a terminal, then restart Excel:" & vbCr & _
           "    pip install xl_factorlasso-<version>-py3-none-any.whl" & vbCr & _
           "    xlwings addin install" & vbCr & _
           "(the wheel file you were given; xl-factorlasso is not on PyPI)", _
           vbExclamation, TITLE
End Sub
