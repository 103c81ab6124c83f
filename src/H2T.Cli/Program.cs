using H2T.Cli;

return CliApp.Run(args);
