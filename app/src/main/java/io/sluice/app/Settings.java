package io.sluice.app;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.common.config.ConfigDef;

/**
 * Where a role's settings come from, lowest precedence first: the table's defaults, the
 * {@code --config} properties file, {@code SLUICE_*} environment variables (the key upper-cased,
 * dots as underscores: {@code kafka.bootstrap.servers} is {@code SLUICE_KAFKA_BOOTSTRAP_SERVERS}),
 * then values the command itself sets.
 */
final class Settings {
    private Settings() {
    }

    static String envName(String key) {
        return "SLUICE_" + key.toUpperCase(Locale.ROOT).replace('.', '_').replace('-', '_');
    }

    static Map<String, Object> load(ConfigDef def, Path configFile, Map<String, String> env, Map<String, Object> overrides)
            throws IOException {
        Map<String, Object> props = new HashMap<>();
        if (configFile != null) {
            Properties p = new Properties();
            try (Reader r = Files.newBufferedReader(configFile)) {
                p.load(r);
            }
            for (String name : p.stringPropertyNames()) {
                if (!def.names().contains(name)) {
                    throw new IllegalArgumentException(configFile + ": unknown key " + name);
                }
                props.put(name, p.getProperty(name));
            }
        }
        for (String key : def.names()) {
            String value = env.get(envName(key));
            if (value != null) {
                props.put(key, value);
            }
        }
        props.putAll(overrides);
        return props;
    }

    /** The table as text: key, type, default, valid values, environment variable and meaning. */
    static String describe(String role, ConfigDef def) {
        StringBuilder out = new StringBuilder("## ").append(role).append('\n');
        for (ConfigDef.ConfigKey key : new java.util.TreeMap<>(def.configKeys()).values()) {
            Object dflt = key.hasDefault() ? (key.type == ConfigDef.Type.PASSWORD && key.defaultValue != null ? "[hidden]"
                    : key.defaultValue) : "(required)";
            out.append(key.name).append('\n')
                    .append("    type: ").append(key.type.name().toLowerCase(Locale.ROOT))
                    .append("   default: ").append(dflt);
            if (key.validator != null) {
                out.append("   valid: ").append(key.validator);
            }
            out.append("\n    env: ").append(envName(key.name)).append('\n')
                    .append("    ").append(key.documentation).append('\n');
        }
        return out.toString();
    }
}
