package io.sluice.ingress.internal;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Whether bytes are valid UTF-8, as RFC 6455 requires of every text message. Client messages
 * are nearly always ASCII, which is valid as it stands; anything else is left to the JDK's
 * decoder, which refuses overlong forms, surrogates and truncated sequences.
 */
final class Utf8 {
    private static final ThreadLocal<CharsetDecoder> DECODER = ThreadLocal.withInitial(() -> StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT));

    private Utf8() {
    }

    static boolean isValid(byte[] bytes, int offset, int length) {
        int end = offset + length;
        for (int i = offset; i < end; i++) {
            if (bytes[i] < 0) {
                // Everything before i was ASCII, so i starts a character.
                try {
                    DECODER.get().reset().decode(ByteBuffer.wrap(bytes, i, end - i));
                    return true;
                } catch (CharacterCodingException e) {
                    return false;
                }
            }
        }
        return true;
    }
}
