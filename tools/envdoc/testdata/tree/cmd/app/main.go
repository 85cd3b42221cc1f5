// Command app is a fixture: direct reads and reads through helpers.
package main

import (
	"fmt"
	"os"

	"example.com/tree/lib/conf"
)

const envName = "NAMED"

func main() {
	fmt.Println(os.Getenv("DIRECT"), os.Getenv(envName), os.Getenv(conf.EnvMode))
	_, _ = os.LookupEnv("LOOKED_UP")
	fmt.Println(conf.Bootstrap("app", os.LookupEnv), conf.Forward(os.LookupEnv))
	fmt.Println(require(os.Getenv, "VIA_PARAM"), load(os.Getenv))
}

func require(getenv func(string) string, name string) string { return getenv(name) }

func load(getenv func(string) string) string {
	const local = "LOCAL_CONST"
	return getenv("VIA_LOOKUP_PARAM") + getenv(local)
}
